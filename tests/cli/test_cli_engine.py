import json

import torch

from interpretability_workbench.cli import main
from interpretability_workbench.model.loader import load_model


def test_help_lists_subcommands(capsys):
    try:
        main(["--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    for cmd in ("ui", "trace", "infer", "model"):
        assert cmd in out


def test_infer_json_matches_plain_forward(tiny_llama_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IWB_HOME", str(tmp_path))
    assert main(["infer", "--model", str(tiny_llama_dir), "--text", "import os", "--top-k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    lm = load_model(str(tiny_llama_dir))
    ids = torch.tensor([[lm.tokenizer.bos_token_id] + lm.tokenizer("import os", add_special_tokens=False).input_ids])
    probs = lm.model(ids).logits[0, -1].softmax(-1)
    top = probs.topk(5)
    assert [t["id"] for t in out["original"]] == top.indices.tolist()
    torch.testing.assert_close(torch.tensor([t["prob"] for t in out["original"]]), top.values, atol=1e-5, rtol=0)


def test_trace_cli_and_errors(tiny_llama_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IWB_HOME", str(tmp_path))
    rc = main(["trace", "--model", str(tiny_llama_dir), "--layer", "1", "--hook", "mlp_out", "--tokens", "300",
               "--context-size", "32", "--out", str(tmp_path / "t")])
    assert rc == 0
    man = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert man["n_tokens"] == 300 and man["hook_name"] == "blocks.1.hook_mlp_out"
    rc = main(["trace", "--model", str(tiny_llama_dir), "--layer", "9", "--tokens", "10", "--out", str(tmp_path / "u")])
    assert rc == 2 and "out of range" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n")
    rc = main(["trace", "--model", str(tiny_llama_dir), "--layer", "0", "--tokens", "10", "--corpus",
               str(tmp_path / "empty.txt"), "--out", str(tmp_path / "v")])
    assert rc == 2 and "no text" in capsys.readouterr().err
    rc = main(["infer", "--model", "/no/such/dir.gguf", "--text", "x"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
