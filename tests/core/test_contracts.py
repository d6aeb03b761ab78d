"""Each producer/consumer contract is written once, in core/contracts.py."""

import ast
import pathlib

from core import contracts

ROOT = pathlib.Path(contracts.__file__).parents[1]
PACKAGES = ("core", "data_schema", "models", "components", "pipeline", "unet4mri")
SHARED_NAMES = (
    "SERVING_SIGNATURE",
    "IMAGES_SIGNATURE",
    "IMAGES_TTA_SIGNATURE",
    "PROBABILITIES",
    "MODEL_INFO_DIR",
    "MODEL_INFO_FILE",
    "SERVING_SUBDIR",
    "HISTORY_FILE",
    "POSTPROCESSING_FILE",
    "INFO_POSTPROCESSING",
    "INFO_POSTPROCESSING_CHOICE",
    "HYPERPARAMETERS_FILE",
    "POSITIVE_PIXEL_WEIGHT",
    "REJECTED_FILE",
)


def _string_literals(path: pathlib.Path) -> set[str]:
    """String constants of a module, docstrings excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and node.body and isinstance(node.body[0], ast.Expr)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


def test_no_module_but_contracts_spells_a_contract_value():
    values = {getattr(contracts, name): name for name in SHARED_NAMES}
    assert len(values) == len(SHARED_NAMES)
    spelled = {
        str(path.relative_to(ROOT)): sorted(values[literal] for literal in _string_literals(path) if literal in values)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "contracts.py"
    }
    assert {path: names for path, names in spelled.items() if names} == {}


def test_versions_are_ordered_by_number_and_other_entries_are_ignored():
    listing = ["9", "10/", "2", "latest", ".partial-11", "10a"]
    assert contracts.versions_newest_first(listing) == ["10", "9", "2"]
