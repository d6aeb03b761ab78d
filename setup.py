"""UNet4MRI: a TFX pipeline for brain-MRI tumor segmentation."""

from setuptools import find_packages, setup

setup(
    name="unet4mri",
    version="0.1.0",
    description="TFX pipeline training UNet and UNet++ models to segment tumors in brain-MRI slices",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["unet4mri*", "core*", "pipeline*", "components*", "models*", "data_schema*"]),
    package_data={"data_schema": ["schema.pbtxt"]},
    # Compatible ranges here; the exact versions live in requirements/lock.txt only
    # (`pip install -c requirements/lock.txt .`, as the Makefile and the Dockerfile do).
    install_requires=[
        "tfx[kfp]>=1.16,<1.17",
        "apache-beam[gcp]>=2.59,<2.60",
        "tensorflow>=2.16,<2.17",
        "tensorflow-data-validation>=1.16,<1.17",
        "tensorflow-model-analysis>=0.47,<0.48",
        "kfp>=2.5,<2.6",
        "numpy<2",
        "protobuf>=3.20,<3.21",
        "tifffile",
        "pillow",
        "nilearn",
        "nibabel>=5,<6",
        "SimpleITK>=2.3,<3",
        "matplotlib",
        "tqdm",
    ],
    extras_require={"test": ["pytest", "hypothesis", "ruff", "import-linter"]},
    entry_points={"console_scripts": ["unet4mri=unet4mri.cli:main"]},
)
