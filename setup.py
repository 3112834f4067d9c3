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

extensions = [
    Extension("rtdecode._ringbuffer", ["cython_ext/rtdecode/_ringbuffer.pyx"], **_COMMON),
    Extension("rtdecode._decimate", ["cython_ext/rtdecode/_decimate.pyx"], **_COMMON),
    Extension("rtdecode._acquire", ["cython_ext/rtdecode/_acquire.pyx"], **_COMMON),
    Extension("rtdecode._quality", ["cython_ext/rtdecode/_quality.pyx"], **_COMMON),
    Extension("rtdecode._bandpower", ["cython_ext/rtdecode/_bandpower.pyx"], **_COMMON),
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["cython_ext"],
        compiler_directives={"language_level": "3"},
    ),
)
