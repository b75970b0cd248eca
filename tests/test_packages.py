"""Package faces: every package's `__init__.py` says what the package is and what each of its modules holds, and
re-exports its names; the logic lives in modules named after what they do. And the house rule: no task name compared
outside tasks/, registry.py and config.py (what a family needs is a registry field or hook)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SRC = ROOT / "src" / "tunelab"
FACES = {
    "cv": ("cross_validate", "SECTIONS", "card", "assign_folds"),
    "doctor": ("doctor", "default_out", "markdown", "Report", "STRICT", "Finding", "FamilyData", "label_issues"),
    "ensembles": ("build", "METHODS", "member_weights", "card"),
    "predictors": ("load",),
    "augment": ("augment",),
    "methods": ("apply_method", "count_parameters"),
    "metrics": ("scalars",),
    "search": ("Plan", "StudyResult", "tune"),
    "serve": ("app", "serve_runs", "Limits", "is_loopback", "require_extra"),
    "ui": ("app", "serve_dashboard"),
    "cli": ("app", "main"),
}
EVERY_PACKAGE = sorted(str(p.parent.relative_to(SRC)) for p in SRC.rglob("__init__.py") if p.parent != SRC)
PUBLIC_API = ("ensemble", "evaluate", "export", "load", "train", "tune")  # tunelab.<name>(...): no module is named so


@pytest.mark.parametrize("package", list(FACES))
def test_a_face_holds_a_docstring_and_re_exports_only(package):
    tree = ast.parse((SRC / package / "__init__.py").read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), package
    defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert set(defined) <= {"__getattr__", "__dir__"}, (package, defined)
    modules = {p.stem for p in (SRC / package).glob("*.py")} - {"__init__", "__main__"}
    for module in modules:  # each module is named in the docstring that says what it holds
        assert f"{module}.py" in ast.get_docstring(tree), (package, module)
    if package != "cli":  # cli/train.py holds `tunelab train`: a command's module is named after the command
        assert not modules & set(PUBLIC_API), (package, modules & set(PUBLIC_API))
    assert not modules & set(FACES[package]), "a module named like a name it re-exports would shadow it"
    face = importlib.import_module(f"tunelab.{package}")
    for name in FACES[package]:
        assert getattr(face, name) is not None and name in dir(face), (package, name)
    with pytest.raises(AttributeError):
        face.nothing_of_that_name  # noqa: B018


@pytest.mark.parametrize("package", EVERY_PACKAGE)
def test_every_init_is_a_face_naming_its_modules(package):
    tree = ast.parse((SRC / package / "__init__.py").read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc, f"{package}/__init__.py: say what the package is and what each module holds"
    defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert set(defined) <= {"__getattr__", "__dir__"}, f"{package}/__init__.py holds logic: {defined}"
    for module in sorted(p.stem for p in (SRC / package).glob("*.py")) + sorted(
        p.name for p in (SRC / package).iterdir() if (p / "__init__.py").exists()
    ):
        if module not in ("__init__", "__main__"):
            assert module in doc, (package, module)


def test_py_typed_ships():
    assert (SRC / "py.typed").is_file()


def test_a_family_doctor_module_imports_the_doctor_face_alone():
    """tasks/<family>/doctor.py imports doctor/family.py: the face loads nothing else (lazily re-exported)."""
    code = ("import sys; import tunelab.doctor.family, tunelab.cv, tunelab.ensembles; "
            "print(sorted(m for m in sys.modules if m.startswith(('tunelab.doctor.', 'tunelab.cv.', "
            "'tunelab.ensembles.'))))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['tunelab.doctor.family']"


def _task_names_compared(path, names: set[str]) -> set[str]:
    found = set()
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        cs = []
        if isinstance(n, ast.Compare):
            cs = [n.left, *n.comparators]
            cs += [e for c in n.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set)) for e in c.elts]
        elif isinstance(n, ast.Dict):
            cs = [k for k in n.keys if k is not None]
        found |= {c.value for c in cs if isinstance(c, ast.Constant) and c.value in names}
    return found


def test_no_task_name_is_compared_outside_the_task_families():
    from tunelab.registry import TASKS

    found = {str(p.relative_to(SRC)): f for p in sorted(SRC.rglob("*.py"))
             if p.relative_to(SRC).parts[0] not in ("tasks", "registry.py", "config.py")
             and (f := _task_names_compared(p, set(TASKS)))}  # fmt: skip
    assert not found, f"ask the registry (a field or hook of the family) instead: {found}"


def test_the_task_name_check_finds_a_planted_comparison(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('if cfg.task == "ner":\n    pass\nx = {"sft": 1}\nok = task in ("regression", "other")\n')
    assert _task_names_compared(planted, {"ner", "sft", "regression", "lm"}) == {"ner", "sft", "regression"}
    planted.write_text('name = "ner"\nprint("classification")\n')
    assert _task_names_compared(planted, {"ner", "classification"}) == set()
