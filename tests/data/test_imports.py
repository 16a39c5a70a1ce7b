"""Importing the data module stays cheap: no torch, torchvision or scikit-learn."""

import subprocess
import sys


def test_import_does_not_load_heavy_modules():
    code = (
        "import sys, xpm_train.data\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'sklearn') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"import xpm_train.data loaded {result.stdout.strip()}"


def test_public_names_exist():
    import xpm_train.data as data

    assert all(hasattr(data, name) for name in data.__all__)
