"""Dataset sources on real layouts: OpenClipArt (Debian), MIRFlickr (fixture), NUS-WIDE (real tags),
Fashion-MNIST mosaics, folder datasets, and S3 roots through a real moto server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tagcode.data.sources import SOURCES, load_source
from tagcode.data.sources.nuswide import photo_id
from tagcode.errors import TagcodeError
from tagcode.io import s3_client
from tests.nuswide_fixture import build_nuswide

OPENCLIPART = Path("/usr/share/openclipart")


@pytest.mark.skipif(not (OPENCLIPART / "svg").is_dir(), reason="Debian openclipart packages not installed")
def test_openclipart_content_subset_matches_the_data_notes() -> None:
    src = load_source("openclipart", str(OPENCLIPART))
    r = src.records
    assert len(r) == 3471 and len(src.label_names) == 53
    assert r["labels"].map(len).mean() == pytest.approx(1.09, abs=0.01)
    assert r["image_uri"].map(lambda p: Path(p).is_file()).all()
    assert "animals" in src.blocked_tags and "birds" in src.blocked_tags
    assert len(load_source("openclipart", str(OPENCLIPART), subset="all").records) == 7458


def test_openclipart_symlinks_make_multilabel(tmp_path: Path) -> None:
    svg = tmp_path / "svg"
    (svg / "animals" / "birds").mkdir(parents=True)
    (svg / "nature").mkdir()
    (svg / "animals" / "birds" / "owl.svg").write_bytes(
        b'<svg><dc:title>Night Owl</dc:title><dc:subject><rdf:Bag><rdf:li>Owl</rdf:li><rdf:li>bird</rdf:li>'
        b'<rdf:li>caf\xe9</rdf:li></rdf:Bag></dc:subject></svg>')
    (svg / "nature" / "owl.svg").symlink_to(svg / "animals" / "birds" / "owl.svg")
    (svg / "nature" / "plain.svg").write_bytes(b"<svg>no metadata</svg>")
    for rel in ("animals/birds/owl.png", "nature/plain.png"):
        (tmp_path / "png" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "png" / rel)
    src = load_source("openclipart", str(tmp_path), min_label_images=1, title_words=True)
    rows = src.records.set_index("image_id")
    assert rows.loc["animals/birds/owl", "labels"] == ["animals/birds", "nature"]
    assert rows.loc["animals/birds/owl", "tags"] == ["owl", "bird", "caf\ufffd", "night", "owl"]
    assert rows.loc["nature/plain", "tags"] == []
    with pytest.raises(TagcodeError, match="unknown option"):
        load_source("openclipart", str(tmp_path), subsett="all")


def test_mirflickr_joins_by_number_and_matches_the_cleaned_set(mirflickr_mini: Path, shared_dir: Path) -> None:
    src = load_source("mirflickr", str(mirflickr_mini))
    r = src.records.set_index("image_id")
    assert len(r) == 40 and len(src.label_names) == 24 and len(src.vocabulary) == 1386
    z = np.load(shared_dir / "data" / "mirflickr20015_tags_labels.npz")
    concepts = [str(c) for c in z["concepts"]]
    vocab = [str(t) for t in z["tag_vocab"]]
    pos = {str(i): k for k, i in enumerate(z["image_id"])}
    checked = 0
    for image_id, row in r.iterrows():
        if image_id in pos:
            k = pos[image_id]
            assert row["labels"] == [concepts[j] for j in np.flatnonzero(z["labels"][k])]
            assert sorted({t for t in row["tags"] if t in vocab}) == sorted(vocab[j] for j in
                                                                            np.flatnonzero(z["tags_bow"][k]))
            checked += 1
    assert checked >= 20
    assert len(load_source("mirflickr", str(mirflickr_mini), relevant_r1=True).label_names) == 38


def test_mirflickr_missing_image_and_bad_tags(tmp_path: Path, mirflickr_mini: Path) -> None:
    import shutil

    shutil.copytree(mirflickr_mini, tmp_path / "m")
    (tmp_path / "m" / "mirflickr" / "im961.jpg").unlink()
    (tmp_path / "m" / "mirflickr" / "meta" / "tags" / "tags962.txt").write_bytes(b"caf\xe9\nsky\n")
    src = load_source("mirflickr", str(tmp_path / "m"))
    assert "961" not in set(src.records["image_id"])
    assert any("tags961.txt" in item and reason == "image missing" for item, reason in src.skipped)
    assert any("tags962.txt" in item and "Latin-1" in reason for item, reason in src.skipped)
    assert src.records.set_index("image_id").loc["962", "tags"] == ["café", "sky"]
    with pytest.raises(TagcodeError, match=r"no mirflickr/im<N>\.jpg images found"):
        load_source("mirflickr", str(tmp_path / "m" / "mirflickr25k_annotations_v080"))


def test_nuswide_21_concept_layout_from_real_tags(tmp_path: Path, shared_dir: Path) -> None:
    root = build_nuswide(shared_dir, tmp_path / "nus")
    src = load_source("nuswide", str(root))
    z = np.load(shared_dir / "data" / "nuswide_tc10_tags_labels.npz")
    assert len(src.records) == 49 and len(src.skipped) == 1 and src.skipped[0][1] == "image missing"
    assert len(src.vocabulary) == 1000 and src.label_names[:2] == ["c00", "c01"]
    first = src.records.iloc[0]
    assert first["tags"] == str(z["train_tags_raw"][1]).split(",")
    assert first["labels"] == [f"c{j:02d}" for j in np.flatnonzero(z["train_labels"][1])]
    assert (src.records["origin"] == "test").sum() == 10
    assert photo_id("images/0213_201390550.jpg") == "201390550"
    assert photo_id("Flickr\\actor_dir\\0001_2124494179.jpg") == "2124494179"
    with pytest.raises(TagcodeError, match=r"Final_Tag_List\.txt not found"):
        load_source("nuswide", str(root), vocabulary="final5018")


def test_fashion_mnist_mosaics() -> None:
    src = load_source("fashion_mnist", "/usr/share/datasets/fashion-mnist", n_train=30, n_query=5, seed=1)
    r = src.records
    assert len(r) == 35 and (r["origin"] == "test").sum() == 5
    assert r["labels"].map(len).between(1, 4).all() and len(src.label_names) == 10
    img = src.loader(r["image_uri"].iloc[0])
    assert img.shape == (56, 56, 3) and img.dtype == np.uint8 and img.any()
    again = load_source("fashion_mnist", "/usr/share/datasets/fashion-mnist", n_train=30, n_query=5, seed=1)
    assert again.records["tags"].tolist() == r["tags"].tolist()
    assert np.array_equal(again.loader(r["image_uri"].iloc[3]), src.loader(r["image_uri"].iloc[3]))


def _folder(root: Path) -> Path:
    (root / "img").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(root / "img" / name)
    return root


def test_folder_jsonl_and_csv(tmp_path: Path) -> None:
    root = _folder(tmp_path / "f")
    (root / "tags.jsonl").write_text(
        json.dumps({"image": "img/a.png", "tags": ["cat", "sofa"], "labels": ["cat"]}) + "\n"
        + json.dumps({"image": "img/b.png", "tags": []}) + "\n"
        + json.dumps({"image": "img/missing.png", "tags": ["x"]}) + "\n")
    src = load_source("folder", str(root))
    assert src.records["image_id"].tolist() == ["img/a", "img/b"] and src.records["tags"].tolist()[1] == []
    assert src.skipped == [(str(root / "img" / "missing.png"), "image missing")]
    (root / "other.csv").write_text("image,tags,labels,image_id\nimg/a.png,new york|sky,city,A\n")
    src = load_source("folder", str(root), tags_file="other.csv")
    assert src.records.iloc[0].to_dict()["tags"] == ["new york", "sky"] and src.label_names == ["city"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b'{"image": "img/a.png", "tags": ["caf\xe9"]}\n', "not UTF-8"),
        (b'{"image": "img/a.png"}\n{"image": "img/b.png", "image_id": "img/a"}\n', "duplicate image id 'img/a'"),
        (b'{"image": "img/a.png"\n', "tags.jsonl:1: not valid JSON"),
    ],
)
def test_folder_bad_tag_files(tmp_path: Path, content: bytes, message: str) -> None:
    root = _folder(tmp_path / "f")
    (root / "tags.jsonl").write_bytes(content)
    with pytest.raises(TagcodeError, match=message):
        load_source("folder", str(root))


def test_unknown_source() -> None:
    assert set(SOURCES.names()) == {"fashion_mnist", "folder", "mirflickr", "nuswide", "openclipart"}
    with pytest.raises(TagcodeError, match=r"unknown dataset source 'mirflikr'.*did you mean 'mirflickr'"):
        load_source("mirflikr", "/nowhere")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(k, v)
    s3_client.cache_clear()
    yield s3_client()
    s3_client.cache_clear()
    server.stop()


def test_mirflickr_from_s3_equals_local(s3, mirflickr_mini: Path) -> None:
    s3.create_bucket(Bucket="datasets")
    for path in mirflickr_mini.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "datasets", f"mir/{path.relative_to(mirflickr_mini)}")
    remote = load_source("mirflickr", "s3://datasets/mir")
    local = load_source("mirflickr", str(mirflickr_mini))
    assert remote.records[["image_id", "tags", "labels"]].equals(local.records[["image_id", "tags", "labels"]])
    assert remote.records["image_uri"].iloc[0].startswith("s3://datasets/mir/mirflickr/im")
    assert remote.loader(remote.records["image_uri"].iloc[0])[:2] == b"\xff\xd8"  # JPEG bytes from S3
    with pytest.raises(TagcodeError, match="not found in S3"):
        remote.loader("s3://datasets/mir/mirflickr/im1.jpg")


def test_unreachable_s3_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3_client.cache_clear()
    try:
        with pytest.raises(TagcodeError, match="S3 endpoint unreachable") as info:
            load_source("folder", "s3://bucket/data")
        assert "\n" not in str(info.value)
    finally:
        s3_client.cache_clear()
