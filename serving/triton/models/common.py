"""What every model of the repository does at load: read its config, refuse a mixed repository.

Runs inside Triton's python backend stub (``triton_python_backend_utils`` is importable only there).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from runtime.errors import ContractError

MANIFEST = "siamtrack_repository.json"
_EXPORT_ID = re.compile(r'key:\s*"export_id"\s*value:\s*\{\s*string_value:\s*"([^"]*)"')


def model_parameters(args: dict) -> dict[str, str]:
    """The ``parameters`` map of the model's config as str -> str."""
    config = json.loads(args["model_config"])
    return {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}


def version_dir(args: dict) -> Path:
    return Path(args["model_repository"]) / str(args["model_version"])


def check_repository(args: dict, export_id: str, models: tuple[str, ...]) -> None:
    """Raise ContractError unless the manifest and every sibling model's configs name ``export_id``.

    A repository assembled from two exports (a search_net copied in from another model) would pair
    one export's template kernels with another's search graph: wrong boxes, no error. Refuse to load.
    """
    model_dir = Path(args["model_repository"])
    root = model_dir.parent
    if not export_id:
        raise ContractError(f"{model_dir}/config.pbtxt has no export_id parameter; regenerate the repository "
                            "with `siamtrack triton-repo`")
    found: dict[str, str] = {}
    manifest = root / MANIFEST
    if manifest.is_file():
        found[str(manifest)] = json.loads(manifest.read_text()).get("export_id", "")
    for name in models:
        for cfg in [root / name / "config.pbtxt", *sorted((root / name / "configs").glob("*.pbtxt"))]:
            if cfg.is_file():
                match = _EXPORT_ID.search(cfg.read_text())
                found[str(cfg)] = match.group(1) if match else ""
    wrong = {path: value for path, value in found.items() if value != export_id}
    if wrong:
        listed = "; ".join(f"{path}: {value or 'no export id'}" for path, value in sorted(wrong.items()))
        raise ContractError(f"model repository {root} mixes exports: {model_dir.name} is export {export_id} but "
                            f"{listed}. Regenerate the whole repository from one export folder with "
                            "`siamtrack triton-repo ARTIFACTS --out REPO`")


def error_response(message: str):
    import triton_python_backend_utils as pb_utils

    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
