"""The reelvec services, one package each: python -m services.<name>."""

import os

# numpy's OpenBLAS keeps a thread per core that spins for about 0.1 s after every BLAS call, even
# one as small as a frame's luma (224*224 x 3). In a service, where requests already run side by
# side, those spinning threads only take cores from the work: in the encoder they doubled the CPU
# of sampling frames (13 clips: 7.3 -> 4.2 CPU-s with one thread; docs/encoder.md). Set here so it
# is in place before any service module imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
