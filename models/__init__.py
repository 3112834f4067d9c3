"""Bundled models, shipped inside the package as ``rtdecode.models``.

Each ``NAME.onnx`` carries its contract in ONNX metadata; ``NAME.md`` / ``NAME.json`` is its card.
They are rebuilt by ``python scripts/build_bundled_models.py`` (see docs/training.md).
"""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent


def bundled_model_names() -> list[str]:
    """The bundled models' names, sorted."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.onnx"))


def bundled_model_path(name: str) -> Path:
    """Return the path of the bundled model ``name`` (``"sleep"`` or ``"seizure"``)."""
    path = MODELS_DIR / f"{name}.onnx"
    if not path.exists():
        raise FileNotFoundError(
            f"no bundled model named {name!r} in {MODELS_DIR}; available: "
            f"{bundled_model_names() or 'none'}"
        )
    return path
