"""The source tree as a user runs it, and as a contributor reads it: no module beside a script can
shadow an installed package (`python runtime/infer.py` puts runtime/ first on sys.path), and no
folder imports one above it."""
import ast
import sys
from importlib.metadata import packages_distributions

import pytest
from conftest import ROOT, fake_engine_folder, run_script

# folders holding scripts or put on sys.path (tests/ by pytest), and import names of sanrt's extras
# that need not be installed here (GPU, serving, batch, app, video)
FOLDERS = ("runtime", "export", "model", "benchmarks", "serving", "evaluation", "app", "batch", "tests")
EXTRAS = {"tensorrt", "cuda", "polygraphy", "onnxruntime", "openvino", "nncf", "pytriton", "tritonclient", "ray",
          "gradio", "gradio_client", "av", "torch", "open_clip", "onnx", "onnxslim", "skimage", "PIL", "numpy"}


def test_no_module_shadows_an_installed_package():
    taken = set(packages_distributions()) | EXTRAS | set(sys.stdlib_module_names)
    clashes = []
    for folder in FOLDERS:
        for p in (ROOT / folder).iterdir():
            name = p.stem if p.suffix == ".py" else p.name if p.is_dir() and (p / "__init__.py").exists() else None
            if name in taken:
                clashes.append(f"{folder}/{p.name} shadows the installed package {name!r}")
    assert not clashes, clashes


def test_infer_script_on_an_engine_folder_gives_the_true_reason(tiny_export, tmp_path):
    """With cuda-python installed, `python runtime/infer.py --engine ENGINE_DIR` on a machine without
    a GPU or TensorRT says so, never that cuda-python is missing."""
    pytest.importorskip("cuda.bindings")

    engines = fake_engine_folder(tiny_export, tmp_path / "engines")
    from PIL import Image

    Image.new("RGB", (64, 48)).save(tmp_path / "photo.png")
    code, _, err = run_script("runtime/infer.py", "--engine", engines, "--image", tmp_path / "photo.png", "--vocab",
                              "cat", "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in err, err
    assert "cuda-python is not installed" not in err
    assert err.startswith(("error: CUDA", "error: TensorRT")), err  # no GPU here, or no TensorRT


def test_export_folders_are_named_export_and_old_spellings_still_work(tiny_export, tmp_path):
    """Every tool but infer.py names the export folder --export; --engine and --onnx still work
    with one notice line."""
    code, _, err = run_script("export/quantize.py", "--engine", tiny_export, "--calibration-images", "0")
    assert code == 2 and err.splitlines()[0] == "notice: --engine is now --export (the old spelling still works)", err
    assert err.splitlines()[1].startswith("error: quantisation needs at least one calibration image")
    code, _, err = run_script("export/quantize.py", "--export", tiny_export, "--calibration-images", "0")
    assert code == 2 and "notice" not in err, err


# Each package and the sanrt packages it may import (itself included). The order is the house's:
# the runtime at the bottom, export and benchmarks on top; a backend sees only the runtime's leaves.
MAY_IMPORT = {
    "sanrt.runtime.backends": ("sanrt.runtime.backends", "sanrt.runtime.errors", "sanrt.runtime.files",
                               "sanrt.runtime.machine"),
    "sanrt.runtime": ("sanrt.runtime",),
    "sanrt.evaluation": ("sanrt.runtime", "sanrt.evaluation"),
    "sanrt.serving": ("sanrt.runtime", "sanrt.serving"),
    "sanrt.app": ("sanrt.runtime", "sanrt.app"),
    "sanrt.batch": ("sanrt.runtime", "sanrt.batch"),
    "sanrt.model": ("sanrt.runtime", "sanrt.evaluation", "sanrt.model"),
    "sanrt.export": ("sanrt.runtime", "sanrt.evaluation", "sanrt.serving", "sanrt.model", "sanrt.export"),
    "sanrt.benchmarks": ("sanrt",),
}
FOLDER_OF = {"sanrt.runtime": "runtime", "sanrt.evaluation": "evaluation", "sanrt.serving": "serving",
             "sanrt.app": "app", "sanrt.batch": "batch", "sanrt.model": "model", "sanrt.export": "export",
             "sanrt.benchmarks": "benchmarks"}
TORCH_FREE = ("sanrt.runtime", "sanrt.evaluation", "sanrt.serving", "sanrt.app", "sanrt.batch")


def _modules():
    for package, folder in FOLDER_OF.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path, path.name == "__init__.py"


def _imports(name: str, path, is_package: bool):
    """Every module `name` imports, anywhere in it (lazy imports inside functions too), absolute."""
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            yield module
            yield from (f"{module}.{a.name}" for a in node.names)  # `from . import cli` names a module


def test_no_folder_imports_one_above_it():
    wrong = []
    for name, path, is_package in _modules():
        owner = max((p for p in MAY_IMPORT if name == p or name.startswith(p + ".")), key=len)
        for imported in _imports(name, path, is_package):
            if not imported.startswith("sanrt.") or imported in FOLDER_OF or imported == "sanrt":
                continue
            if not any(imported == a or imported.startswith(a + ".") for a in MAY_IMPORT[owner]):
                if any(imported.startswith(p + ".") for p in FOLDER_OF):  # a name imported from a package
                    wrong.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_runtime_serving_and_evaluation_never_import_torch():
    """Checked in the source, lazy imports included (tests/test_runtime_torch_free.py runs them)."""
    found = [f"{path.relative_to(ROOT)} imports {m}" for name, path, pkg in _modules()
             if name.startswith(TORCH_FREE) for m in _imports(name, path, pkg)
             if m.split(".")[0] in ("torch", "open_clip", "torchvision")]
    assert not found, found


def test_every_folder_states_its_contract():
    """Each package's __init__ docstring says what it holds and what it may import."""
    for folder in ("runtime", "runtime/backends", "evaluation", "serving", "app", "batch", "model", "export",
                   "benchmarks", "benchmarks/lib"):
        doc = ast.get_docstring(ast.parse((ROOT / folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 150, folder
        if folder not in ("benchmarks/lib",):
            assert "import" in doc, f"{folder}/__init__.py does not say what it may import"
