"""Models: importing this module registers them with detectron2's registries."""
import importlib

# Each module registers its components; a module that is not written yet is skipped so the package
# stays importable while the models are being built.
for _name in ("hourglass", "fcos_mo", "mask_rcnn_star"):
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_name}":
            raise
