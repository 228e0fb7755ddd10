"""tagcode: weakly supervised image retrieval (WSDHQ, WSHRCA) as a reproducible pipeline."""

import os

# OpenMP (faiss, torch) spins up to 300,000 times before a waiting thread sleeps. On the shared 2-core
# machine, with other jobs running, that spinning made faiss's OPQ training 15× slower (77 s against 5 s
# for 10 updates at 256-d); never spinning (OMP_WAIT_POLICY=PASSIVE) made the small torch models 1.7×
# slower on an idle machine (WDHT-16: 17 s against 10 s). 10,000 spins keeps both fast (3.1 s with two CPU
# burners beside it, 10.4 s idle). Set before faiss or torch loads the OpenMP runtime.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"
