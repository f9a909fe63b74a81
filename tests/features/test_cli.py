"""``microscope analyze`` drives the same service as the server."""
from __future__ import annotations

import re

from interpretability_workbench.cli import main
from interpretability_workbench.state import WorkbenchState


def test_cli_analyze(tmp_path, monkeypatch, capsys, tiny_llama_dir, state, make_sae):
    sae_id, sae = make_sae(seed=11)
    # a second workspace on disk holding the same SAE, analysed by the CLI in its own process state
    monkeypatch.setenv("IWB_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("IWB_DEVICE", "cpu")
    monkeypatch.setenv("IWB_DTYPE", "float32")
    from interpretability_workbench.settings import Settings

    st = WorkbenchState(Settings())
    st.saes.register(sae, source="imported", sae_id=sae_id)
    st.close()
    assert main(["analyze", "--sae", sae_id, "--model", str(tiny_llama_dir), "--tokens", "630"]) == 0
    out = capsys.readouterr().out
    m = re.search(rf"analysed {sae.cfg.d_sae} features of {sae_id} on (\d+) tokens \((\d+) special tokens left out", out)
    assert m and int(m.group(1)) + int(m.group(2)) == 630, out
    st = WorkbenchState(Settings())
    try:
        assert st.features.status(sae_id)["status"] == "done"
        assert st.db.query_one("SELECT COUNT(*) AS n FROM features WHERE sae_id = ?", [sae_id])["n"] == sae.cfg.d_sae
    finally:
        st.close()
    assert main(["analyze", "--sae", "missing", "--model", str(tiny_llama_dir)]) == 2
