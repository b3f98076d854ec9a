"""tools/app.py: one-line errors and exit status 2 when there is nothing (or nothing valid) to show."""
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def app_main():
    pytest.importorskip("gradio", reason="tools/app.py needs the app extra (pip install -e '.[app]')")
    spec = importlib.util.spec_from_file_location("alpseg_tool_app", os.path.join(REPO, "tools", "app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_missing_demo_folder(app_main, tmp_path, capsys):
    assert app_main(["--demo-dir", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert "demo: no such demo folder; run `make demo`" in err and len(err.strip().splitlines()) == 1


def test_demo_folder_without_outputs_lists_every_missing_file(app_main, tmp_path, capsys):
    (tmp_path / "demo").mkdir()
    assert app_main(["--demo-dir", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    for what in ("config: ", "weights: ", "ALPS.json: ", "image root: ", "narratives: "):
        assert what in err
    assert "run `make demo`" in err


def test_nothing_to_show_and_alps_without_images(app_main, tmp_path, capsys):
    assert app_main([]) == 2
    assert "nothing to show" in capsys.readouterr().err
    alps = tmp_path / "ALPS.json"
    alps.write_text('{"images": [], "annotations": []}')
    assert app_main(["--alps", str(alps)]) == 2
    assert "--alps needs --image-root" in capsys.readouterr().err


def test_demo_inputs_find_every_trained_run(tmp_path):
    from alpseg.app.inputs import AppInputs, find_models

    demo = tmp_path / "demo"
    for name, trained in (("box_oracle", True), ("open_vocab", True), ("fcos_mo_alp", True), ("half", False)):
        (demo / name).mkdir(parents=True)
        (demo / name / "config.yaml").write_text("")
        if trained:
            (demo / name / "model_final.pth").write_bytes(b"")
    (demo / "fcos_mo_alp" / "results.json").write_text("{}")
    found = find_models(str(demo))
    assert list(found) == ["box_oracle", "fcos_mo_alp", "open_vocab"]  # not the run without weights
    inputs = AppInputs.from_demo_dir(str(demo))
    assert (inputs.config_file, inputs.weights) == found["fcos_mo_alp"]
    assert inputs.models == found and inputs.results == [str(demo / "fcos_mo_alp" / "results.json")]
    assert inputs.vocabulary.startswith("apple, banana")
    assert inputs.missing() == [f"{what}: {demo}/datasets/{path}" for what, path in (
        ("ALPS.json", "alps/locnar_oid_train_alps.json"), ("image root", "openimages/train"),
        ("narratives", "localized_narratives/open_images_train_v6_localized_narratives.jsonl"))]
