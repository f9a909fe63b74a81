def test_tiny_models_load(tiny_model_dirs):
    from interpretability_workbench.model.loader import load_model

    for kind, d in tiny_model_dirs.items():
        lm = load_model(str(d), device="cpu")
        assert lm.n_layers == 3 and lm.d_model == 64, kind


def test_client_health(client):
    r = client.get("/api/health")
    assert r.status_code == 200 and r.json()["model_status"] == "ready"
    m = client.get("/api/model").json()
    assert m["family"] == "llama" and m["n_layers"] == 3
