"""Build step: copy the bundled laptop model into the wheel (everything else is pyproject.toml).

The model's files live once, at the repository's root, where the three scripts use them; the
wheel gets a copy as ``ppml/laptop_model/`` (see ``ppml/bundled.py``) so that the installed
commands work in any folder.
"""
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # ppml and ppml.bundled import nothing beyond the standard library
from ppml.bundled import MODEL_FILES, PACKAGE_FOLDER  # noqa: E402


class BuildWithModel(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install runs from the checkout, which has the files
            return
        target = Path(self.build_lib) / "ppml" / PACKAGE_FOLDER
        for name in MODEL_FILES:
            if (ROOT / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ROOT / name, target / name)
        if not (target / "col_tnf.pkl").is_file():
            raise SystemExit("setup.py: col_tnf.pkl is missing at the repository's root; "
                             "the wheel would have no bundled model")


setup(cmdclass={"build_py": BuildWithModel})
