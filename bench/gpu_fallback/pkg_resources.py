"""Stand-in for setuptools' ``pkg_resources``, put on the path by bench/gpu_check.sh only when the GPU
machine's setuptools no longer ships it (it was deprecated for removal). detectron2's model zoo uses
one function of it, ``resource_filename``, to find its config files inside the installed package."""
import importlib.resources
import os


def resource_filename(package: str, resource: str) -> str:
    path = str(importlib.resources.files(package).joinpath(resource))
    if not os.path.exists(path):
        raise FileNotFoundError(f"{resource} is not in package {package} ({path})")
    return path
