"""Build the Cython kernels in ``cython_ext/`` into the ``rtdecode`` package.

Metadata lives in ``pyproject.toml``; this file only declares the extensions.
"""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

_COMMON = dict(
    include_dirs=[np.get_include(), "cython_ext"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O3"],
)

# (module, stage folder): each kernel lives in the subpackage of its pipeline stage.
_KERNELS = [
    ("_ringbuffer", "acquisition"),
    ("_acquire", "acquisition"),
    ("_decimate", "features"),
    ("_bandpower", "features"),
    ("_quality", "features"),
    ("_records", "offline"),
]
extensions = [
    Extension(f"rtdecode.{stage}.{name}", [f"cython_ext/rtdecode/{stage}/{name}.pyx"], **_COMMON)
    for name, stage in _KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["cython_ext"],
        compiler_directives={"language_level": "3"},
    ),
)
