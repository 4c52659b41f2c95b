"""pip install ./python — pure Python over libmoedit.so (found at run time:
$MOEDIT_LIB, an install prefix above the module, or the linker's path).
No pyproject.toml on purpose: pip then builds with the setuptools already
installed (Debian python3-setuptools) instead of fetching it, so it works offline."""
from setuptools import setup

setup(
    name="moedit",
    version="0.1.0",
    description="MoE diffusion transformers (DiT, DiT-MoE, Switch-DiT) over libmoedit",
    packages=["moedit"],
    python_requires=">=3.9",
    install_requires=["numpy"],
)
