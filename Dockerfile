# Pipeline image for Kubeflow Pipelines / Vertex AI: the pinned stack and this project.
#
#   GPU (Trainer):  docker build -t REGISTRY/unet4mri:gpu --build-arg TENSORFLOW_EXTRA=and-cuda .
#   CPU (others):   docker build -t REGISTRY/unet4mri:cpu .
#
# TFX 1.16's compiled dependencies (ml-metadata, tfx-bsl) exist for Python 3.9/3.10
# only, and the official tensorflow/tensorflow GPU images of recent releases ship
# Python 3.11 (tensorflow/tensorflow#82529), so the base is Python 3.10 and the GPU
# build takes CUDA and cuDNN from `tensorflow[and-cuda]` (pip wheels; the driver comes
# from the node through the NVIDIA container runtime). Not built in this repository's
# CI: its machines reach no container registry.
FROM python:3.10-slim-bookworm

ARG TENSORFLOW_EXTRA=""
ENV TF_USE_LEGACY_KERAS=0 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /unet4mri
COPY requirements/lock.txt requirements/lock.txt
# File systems for the pipeline root: gs:// is built into TensorFlow (tensorflow-io-gcs-filesystem,
# pinned in the lock); s3:// needs tensorflow-io's plug-in (loaded by pipeline.kfp_entrypoint) for
# TensorFlow and apache-beam[aws] for Beam. tensorflow-io is not in the lock: unverified offline.
RUN pip install --upgrade "pip<25" wheel setuptools \
 && pip install -c requirements/lock.txt "tfx[kfp]==1.16.0" "apache-beam[gcp,aws]==2.59.0" \
 && pip install -c requirements/lock.txt "tensorflow-io==0.37.1" \
 && if [ -n "$TENSORFLOW_EXTRA" ]; then pip install "tensorflow[$TENSORFLOW_EXTRA]==2.16.2"; fi

COPY setup.py README.md ./
COPY pipeline pipeline
COPY components components
COPY models models
COPY data_schema data_schema
COPY core core
COPY unet4mri unet4mri
RUN pip install -c requirements/lock.txt . && python -c "import core, components, models, pipeline, unet4mri"

# The compiled specs run `python -m pipeline.kfp_entrypoint` in every container (TFX's runner,
# with what the open-source KFP launcher leaves out filled in; see docs/kubeflow.md);
# every custom component and the trainer import from the package.
