"""The report's weights section: the same record (source, revision, sha256, how the tensors loaded) for every kind."""
from medfit.report.weights import weights_section

SHA = "ab" * 32
RECORD = {"source": "hf-hub:acme/tiny", "kind": "hf-hub", "revision": "0123456789abcdef", "sha256": SHA}


def rows(html: str) -> dict[str, str]:
    """The section's table as {label: value}."""
    cells = [c.split("</td>")[0] for c in html.split("<td")[1:]]
    return {k.split(">", 1)[1]: v.split(">", 1)[1] for k, v in zip(cells[::2], cells[1::2])}


def test_timm_record_shows_source_hash_and_tensor_counts():
    metrics = {"pretrained": {"weights": RECORD, "matched": 60, "backbone_tensors": 62, "missing": 2, "unexpected": 0}}
    table = rows(weights_section(metrics))
    assert table["pretrained weights"] == "hf-hub:acme/tiny @ 0123456789abcdef"
    assert table["sha256"] == f"{SHA[:12]} (weight file; every file in the training record)"
    assert table["tensors loaded"] == "60 of 62 backbone tensors (2 missing, 0 unexpected)"


def test_open_clip_and_vlm_records_show_how_their_package_loaded_them():
    clip = {"weights": RECORD, "tensors": 210, "loaded_by": "open_clip.create_model (strict: every tensor)"}
    assert rows(weights_section({"pretrained": clip}))["tensors loaded"] == \
        "210 tensors (open_clip.create_model (strict: every tensor))"
    sharded = {**RECORD, "sha256": None, "files": {"model-00001-of-00002.safetensors": SHA,
                                                   "model-00002-of-00002.safetensors": SHA}}
    vlm = {"weights": sharded, "loaded_by": "transformers from_pretrained (local files)"}
    table = rows(weights_section({"pretrained": vlm}))
    assert table["sha256"] == "2 weight files (each in the training record)"
    assert table["tensors loaded"] == "by transformers from_pretrained (local files)"
