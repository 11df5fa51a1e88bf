"""The compiled kernels behind chainrule.kernels (src/chainrule/kernels/*.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the
install succeeds and the optimizers run their NumPy lines, which give the same numbers.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "chainrule.kernels._adam",
    sources=["src/chainrule/kernels/adam.c"],
    # no fused multiply-adds (the same bits as NumPy); sqrt without errno can be vectorised
    extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno"],
    optional=True,
)])
