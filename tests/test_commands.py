"""The command layer: every verb that takes a config takes overrides the same way; runs share one pipeline."""
import pandas as pd
import pytest

from medfit.cli import VERBS, build_parser, main
from medfit.commands.common import load_experiment

CONFIG_VERBS = ["preprocess", "audit", "train", "validate", "zeroshot", "vlm", "pretrain", "tune"]


def write_config(tmp_path, text="name: x\n"):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("verb", CONFIG_VERBS)
def test_repeated_set_options_accumulate_and_later_ones_win(tmp_path, verb):
    path = write_config(tmp_path)
    extra = {"validate": ["--folds", "3"], "tune": ["--study", "s"]}.get(verb, [])
    argv = [verb, str(path), *extra, "--set", "train.epochs=2", "model.name=resnet50",
            "--set", "train.epochs=4", "--name", "y"]
    cfg = load_experiment(build_parser(argv).parse_args(argv))
    assert (cfg.train.epochs, cfg.model.name, cfg.name) == (4, "resnet50", "y")


def test_every_verb_lives_in_the_commands_package():
    import importlib

    for verb in VERBS:
        module = importlib.import_module(f"medfit.commands.{verb}")
        assert callable(module.add_arguments) and callable(module.run), verb


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/absolute", "a/b", ".."])
def test_a_run_name_is_a_plain_folder_name(tmp_path, capsys, name):
    path = write_config(tmp_path, f"name: x\noutput_dir: {tmp_path / 'runs'}\n")
    assert main(["train", str(path), "--name", name]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: name") and "plain folder name" in err and "\n" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "escaped").exists()


def leak_csv(shared_data, tmp_path) -> str:
    """Real X-rays with one test image copied into train (a leak the audit must stop)."""
    root = shared_data / "chest-xray-pneumonia-224"
    rows = []
    for split, folder, start in [("train", "train", 0), ("val", "train", 40), ("test", "test", 0)]:
        for label in ("NORMAL", "PNEUMONIA"):
            for f in sorted((root / folder / label).glob("*.jpeg"))[start:start + 4]:
                rows.append({"image": str(f), "label": label, "patient_id": f"{split}-{f.stem}", "split": split})
    rows.append({**rows[-1], "patient_id": "copy", "split": "train"})
    path = tmp_path / "leak.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_vlm_and_zero_shot_runs_are_audited_like_training_runs(shared_data, tmp_path, capsys):
    from medfit.vlm.tiny import build_tiny_vlm

    from test_models_clip import make_tiny_biomedclip

    csv = leak_csv(shared_data, tmp_path)
    data = f"data: {{source: csv, root: {csv}, class_names: [NORMAL, PNEUMONIA], image_size: 28, channels: 3}}\n"
    common = f"output_dir: {tmp_path / 'runs'}\n{data}train: {{progress_bar: false, logger: none}}\naudit: {{near_duplicates: false}}\n"
    build_tiny_vlm(tmp_path / "vlm", ["Does it show pneumonia? No pneumonia Pneumonia"])
    make_tiny_biomedclip(tmp_path / "clip")
    vlm = write_config(tmp_path, f"name: v\n{common}vlm: {{model: {tmp_path / 'vlm'}, finetune: none, device: cpu}}\n")
    zs = tmp_path / "zs.yaml"
    zs.write_text(f"name: z\n{common}model: {{kind: clip_zero_shot, clip: {{source: 'local-dir:{tmp_path / 'clip'}', "
                  f"image_size: 32}}}}\n")
    for verb, path in (("vlm", vlm), ("zeroshot", zs)):
        assert main([verb, str(path)]) == 2, verb
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: dataset audit:") and "audit.dedupe" in err, (verb, err)
        assert main([verb, str(path), "--set", "audit.dedupe=true", "evaluate.bootstrap=10"]) == 0, verb
        run = tmp_path / "runs" / ("v" if verb == "vlm" else "z")
        assert (run / "audit.json").is_file() and (run / "predictions.csv").is_file() and (run / "report.html").is_file()
