"""UNet4MRI: a TFX pipeline for brain-MRI tumor segmentation."""

from setuptools import find_packages, setup

setup(
    name="unet4mri",
    version="0.1.0",
    description="TFX pipeline training UNet and UNet++ models to segment tumors in brain-MRI slices",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["unet4mri*", "core*", "pipeline*", "components*", "models*", "data_schema*"]),
    package_data={"data_schema": ["schema.pbtxt"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.59.0",
        "tensorflow==2.16.2",
        "tensorflow-data-validation==1.16.1",
        "tensorflow-model-analysis==0.47.1",
        "kfp==2.5.0",
        "numpy<2",
        "protobuf>=3.20,<3.21",
        "tifffile",
        "pillow",
        "nilearn",
        "matplotlib",
        "tqdm",
    ],
    extras_require={"test": ["pytest", "hypothesis", "ruff", "import-linter"]},
    entry_points={"console_scripts": ["unet4mri=unet4mri.cli:main"]},
)
