"""Fuzzing the reader: random bytes and mutated TIFFs give a valid slice or a clean SliceError, nothing else."""

import io
import os
import tempfile

import numpy as np
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import slices


def _tiff_bytes(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


_RNG = np.random.default_rng(0)
VALID_IMAGE = _tiff_bytes(_RNG.integers(0, 255, (32, 32, 3), dtype=np.uint8), photometric="rgb")
VALID_MASK = _tiff_bytes((_RNG.random((32, 32)) > 0.7).astype(np.uint8) * 255)
VALID_COMPRESSED = _tiff_bytes(_RNG.integers(0, 255, (32, 32, 3), dtype=np.uint8), photometric="rgb", compression="zlib")

mutation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(b"")),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
)


def _mutate(data: bytes, mutations) -> bytes:
    for kind, position, payload in mutations:
        position %= max(len(data), 1)
        if kind == "set":
            data = data[:position] + payload + data[position + len(payload) :]
        elif kind == "truncate":
            data = data[:position]
        else:
            data = data[:position] + payload + data[position:]
    return data


def _check_reader(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "C_1.tif")
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            image = slices.read_image(path)
        except slices.SliceError as error:
            assert str(error).startswith(path) and "\n" not in str(error)
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        try:
            mask = slices.read_mask(path)
        except slices.SliceError as error:
            assert str(error).startswith(path) and "\n" not in str(error)
        else:
            assert mask.dtype == np.uint8 and mask.ndim == 2 and set(np.unique(mask).tolist()) <= {0, 1}


FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _check_reader(data)


@FUZZ
@given(st.binary(max_size=64).map(lambda tail: b"II*\x00" + tail) | st.binary(max_size=64).map(lambda tail: b"MM\x00*" + tail))
def test_random_bytes_after_a_tiff_header(data):
    _check_reader(data)


@FUZZ
@given(st.sampled_from([VALID_IMAGE, VALID_MASK, VALID_COMPRESSED]), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_tiffs(original, mutations):
    _check_reader(_mutate(original, mutations))


def test_the_unmutated_files_read_as_valid_slices(tmp_path):
    for name, data in (("image.tif", VALID_IMAGE), ("compressed.tif", VALID_COMPRESSED)):
        (tmp_path / name).write_bytes(data)
        assert slices.read_image(str(tmp_path / name)).shape == (32, 32, 3)
    (tmp_path / "mask.tif").write_bytes(VALID_MASK)
    assert slices.read_mask(str(tmp_path / "mask.tif")).max() == 1
