"""The one compiled part: Adam's update in one pass (src/chainrule/_fused.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the
install succeeds and chainrule.optimizers computes the same numbers with NumPy.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "chainrule._fused",
    sources=["src/chainrule/_fused.c"],
    # no fused multiply-adds (the same bits as NumPy); sqrt without errno can be vectorised
    extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno"],
    optional=True,
)])
