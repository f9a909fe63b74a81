"""Pretrained SAE suites, offline: SAEs saved by the real sae_lens are cached in a Hugging Face hub layout,
named by a registry file, imported by release + SAE id and compared with sae_lens's own
``SAE.from_pretrained`` (same release registered in sae_lens) on random inputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interpretability_workbench.errors import Invalid, NotFound
from interpretability_workbench.sae.io import load_sae, save_sae
from interpretability_workbench.sae.pretrained import (ReleaseIndex, list_releases, load_pretrained, load_release,
                                                        release_sae_ids, resolve)

REPO = "tester/tiny-llama-saes"
MODEL = "tiny-llama"
ATOL = 1e-4


def _entry(saes: list[dict], **extra) -> dict:
    return {"repo_id": REPO, "model": MODEL, "conversion_func": None, "saes": saes, **extra}


def _publish(hub, tmp_path, make_sae, arch: str, *, release="tiny-res", sae_id="blocks.1.hook_resid_post",
             path="layer_1", sae_extra: dict | None = None, release_extra: dict | None = None, **cfg):
    """Save one SAE with sae_lens, cache it, write a registry naming it. Returns (index, entry, their SAE)."""
    folder = tmp_path / f"saved-{arch}-{path}"
    theirs = make_sae(arch, folder, **cfg)
    commit = hub.publish(REPO, {path: folder})
    entry = _entry([{"id": sae_id, "path": path, "neuronpedia": f"tiny/{path}", **(sae_extra or {})}],
                   **(release_extra or {}))
    index = ReleaseIndex.load([hub.registry({release: entry})], include_saelens=False)
    return index, entry, theirs, commit


def _assert_same(ours, theirs, d_in=64, n=256, scale=2.0):
    x = torch.randn(n, d_in) * scale
    with torch.no_grad():
        f_ours, f_theirs = ours.encode(x), theirs.encode(x)
        torch.testing.assert_close(f_ours, f_theirs, rtol=0, atol=ATOL)
        assert 0 < int((f_theirs > 0).sum()) < f_theirs.numel()  # the comparison is not vacuous
        torch.testing.assert_close(ours.decode(f_ours), theirs.decode(f_theirs), rtol=0, atol=ATOL)


@pytest.mark.parametrize("apply_b_dec_to_input", [True, False])
def test_jumprelu_imports_and_encodes_like_saelens(hub, tmp_path, make_sae, in_saelens_registry, apply_b_dec_to_input):
    from sae_lens import SAE

    index, entry, _, commit = _publish(hub, tmp_path, make_sae, "jumprelu", apply_b_dec_to_input=apply_b_dec_to_input)
    in_saelens_registry("tiny-res", entry)
    theirs = SAE.from_pretrained("tiny-res", "blocks.1.hook_resid_post")
    assert type(theirs).__name__ == "JumpReLUSAE" and bool((theirs.threshold < 0).any())

    ours = load_pretrained("tiny-res", "blocks.1.hook_resid_post", index=index)
    cfg = ours.cfg
    assert (cfg.architecture, cfg.d_in, cfg.d_sae, cfg.hook_name, cfg.model_id) == \
        ("jumprelu", 64, 128, "blocks.1.hook_resid_post", MODEL)
    assert cfg.apply_b_dec_to_input is apply_b_dec_to_input
    torch.testing.assert_close(ours.threshold, theirs.threshold.detach())
    assert cfg.extra["pretrained"] == {"release": "tiny-res", "sae_id": "blocks.1.hook_resid_post", "repo_id": REPO,
                                       "path": "layer_1", "revision": commit, "neuronpedia_id": "tiny/layer_1"}
    assert cfg.extra["saelens"]["neuronpedia_id"] == "tiny/layer_1"
    _assert_same(ours, theirs)


def test_resolve_points_into_the_snapshot(hub, tmp_path, make_sae):
    index, _, _, commit = _publish(hub, tmp_path, make_sae, "jumprelu")
    r = resolve("tiny-res", "blocks.1.hook_resid_post", index=index)
    assert r.folder == hub.repo_dir(REPO) / "snapshots" / commit / "layer_1"
    assert sorted(p.name for p in r.folder.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    assert r.revision == commit and r.cfg_overrides == {"neuronpedia_id": "tiny/layer_1"}
    assert r.info.repo_id == REPO and r.info.path == "layer_1"
    # an explicit cache_dir gives the same answer
    assert resolve("tiny-res", "blocks.1.hook_resid_post", index=index, cache_dir=hub.root).folder == r.folder


@pytest.mark.parametrize("rescale", [True, False])
def test_topk_rescale_acts_by_decoder_norm_is_folded_exactly(hub, tmp_path, make_sae, in_saelens_registry, rescale):
    from sae_lens import SAE

    index, entry, _, _ = _publish(hub, tmp_path, make_sae, "topk", k=6, rescale_acts_by_decoder_norm=rescale)
    in_saelens_registry("tiny-res", entry)
    theirs = SAE.from_pretrained("tiny-res", "blocks.1.hook_resid_post")
    assert theirs.cfg.rescale_acts_by_decoder_norm is rescale
    norms = theirs.W_dec.detach().norm(dim=1)
    assert float(norms.max() / norms.min()) > 2  # uneven decoder norms: the rescaling matters
    ours = load_pretrained("tiny-res", "blocks.1.hook_resid_post", index=index)
    assert (ours.cfg.architecture, ours.cfg.k) == ("topk", 6)
    if rescale:  # folded: unit decoder rows, and recorded
        torch.testing.assert_close(ours.W_dec.norm(dim=1), torch.ones(128), rtol=0, atol=1e-5)
        assert ours.cfg.extra["folded"] == {"rescale_acts_by_decoder_norm": True}
    else:
        torch.testing.assert_close(ours.W_dec, theirs.W_dec.detach())
    _assert_same(ours, theirs)


def test_standard_imports_and_encodes_like_saelens(hub, tmp_path, make_sae, in_saelens_registry):
    from sae_lens import SAE

    index, entry, _, _ = _publish(hub, tmp_path, make_sae, "standard", apply_b_dec_to_input=False)
    in_saelens_registry("tiny-res", entry)
    ours = load_pretrained("tiny-res", "blocks.1.hook_resid_post", index=index)
    assert ours.cfg.architecture == "standard" and not ours.cfg.apply_b_dec_to_input
    _assert_same(ours, SAE.from_pretrained("tiny-res", "blocks.1.hook_resid_post"))


def test_batchtopk_saved_by_saelens_imports_as_jumprelu(hub, tmp_path, make_sae, in_saelens_registry):
    from sae_lens import SAE

    index, entry, _, _ = _publish(hub, tmp_path, make_sae, "batchtopk", k=8)
    saved = json.loads((tmp_path / "saved-batchtopk-layer_1" / "cfg.json").read_text())
    assert saved["architecture"] == "jumprelu" and saved["metadata"]["training_architecture"] == "batchtopk"
    in_saelens_registry("tiny-res", entry)
    theirs = SAE.from_pretrained("tiny-res", "blocks.1.hook_resid_post")
    ours = load_pretrained("tiny-res", "blocks.1.hook_resid_post", index=index)
    assert ours.cfg.architecture == "jumprelu" and ours.cfg.extra["saelens"]["training_architecture"] == "batchtopk"
    torch.testing.assert_close(ours.threshold, torch.full((128,), 0.4))
    _assert_same(ours, theirs, scale=4.0)


def test_expected_average_only_in_folds_the_registry_factor(hub, tmp_path, make_sae, in_saelens_registry):
    from sae_lens import SAE

    index, entry, _, _ = _publish(hub, tmp_path, make_sae, "jumprelu", normalize_activations="expected_average_only_in",
                                  sae_extra={"norm_scaling_factor": 2.5})
    in_saelens_registry("tiny-res", entry)
    theirs = SAE.from_pretrained("tiny-res", "blocks.1.hook_resid_post")  # sae_lens folds the factor itself
    assert theirs.cfg.normalize_activations == "none"
    ours = load_pretrained("tiny-res", "blocks.1.hook_resid_post", index=index)
    assert ours.cfg.normalize_activations == "none" and ours.cfg.extra["folded"] == {"norm_scaling_factor": 2.5}
    _assert_same(ours, theirs)


def test_expected_average_only_in_without_factor_is_refused_then_given(hub, tmp_path, make_sae):
    from sae_lens import SAE

    index, _, _, _ = _publish(hub, tmp_path, make_sae, "jumprelu", normalize_activations="expected_average_only_in")
    with pytest.raises(Invalid) as e:
        load_pretrained("tiny-res", "blocks.1.hook_resid_post", index=index)
    assert e.value.status_code == 422
    assert "norm_scaling_factor" in e.value.detail and "tiny-res/blocks.1.hook_resid_post" in e.value.detail
    ours = load_pretrained("tiny-res", "blocks.1.hook_resid_post", index=index, norm_scaling_factor=0.7)
    theirs = SAE.load_from_disk(str(tmp_path / "saved-jumprelu-layer_1"))
    theirs.fold_activation_norm_scaling_factor(0.7)  # what from_pretrained does with a registry factor
    _assert_same(ours, theirs)


@pytest.mark.parametrize("norm,needle", [("constant_norm_rescale", "depends on the input"),
                                         ("layer_norm", "depends on the input"),
                                         ("covariance_whitening", "fold_activation_whitening")])
def test_unfoldable_normalisations_are_refused(hub, tmp_path, make_sae, norm, needle):
    # as SAELens's mistral-7b-res-wg release does, the normalisation comes from the registry's overrides
    index, _, _, _ = _publish(hub, tmp_path, make_sae, "jumprelu",
                              release_extra={"config_overrides": {"normalize_activations": norm}})
    with pytest.raises(Invalid) as e:
        load_pretrained("tiny-res", "blocks.1.hook_resid_post", index=index)
    assert norm in e.value.detail and needle in e.value.detail


def test_offline_and_not_cached_names_the_files_to_fetch(hub, tmp_path, make_sae):
    index = ReleaseIndex.load([hub.registry({"tiny-res": _entry([{"id": "blocks.1.hook_resid_post",
                                                                     "path": "layer_1"}])})], include_saelens=False)
    for local_only in (True, False):  # HF_HUB_OFFLINE=1 wins over local_files_only=False
        with pytest.raises(NotFound) as e:
            resolve("tiny-res", "blocks.1.hook_resid_post", index=index, local_files_only=local_only)
        msg = e.value.detail
        assert e.value.status_code == 404
        assert f"hf download {REPO} layer_1/cfg.json layer_1/sae_weights.safetensors" in msg
        assert str(hub.root) in msg and ("HF_HUB_OFFLINE" in msg) is (not local_only)
    # a partial download (cfg only): just the missing file is named
    folder = tmp_path / "saved"
    make_sae("jumprelu", folder)
    hub.publish(REPO, {"layer_1": folder}, only=("cfg.json",))
    with pytest.raises(NotFound) as e:
        load_pretrained("tiny-res", "blocks.1.hook_resid_post", index=index)
    assert f"hf download {REPO} layer_1/sae_weights.safetensors`" in e.value.detail
    assert "layer_1/cfg.json" not in e.value.detail


def test_unknown_release_or_id_and_unsupported_formats(hub, tmp_path, make_sae):
    index, _, _, _ = _publish(hub, tmp_path, make_sae, "jumprelu")
    with pytest.raises(NotFound, match="did you mean tiny-res"):
        resolve("tiny-rez", "blocks.1.hook_resid_post", index=index)
    with pytest.raises(NotFound, match="did you mean blocks.1.hook_resid_post"):
        resolve("tiny-res", "blocks.1.hook_resid_pos", index=index)
    # a release in another format: refused before any file is looked up
    gemma = hub.registry({"scope": {**_entry([{"id": "layer_1/width_16k", "path": "layer_1/width_16k"}]),
                                    "conversion_func": "gemma_2"}}, name="gemma.yaml")
    with pytest.raises(Invalid, match=r"not supported yet: gemma_2 — Gemma Scope \(params.npz"):
        resolve("scope", "layer_1/width_16k", index=ReleaseIndex.load([gemma], include_saelens=False))
    # an architecture the workbench does not run, saved by sae_lens
    index, _, _, _ = _publish(hub, tmp_path, make_sae, "gated", release="gated-res", path="gated_1")
    with pytest.raises(Invalid, match="not supported yet: gated SAEs"):
        load_pretrained("gated-res", "blocks.1.hook_resid_post", index=index)
    # a hook the workbench cannot place
    index, _, _, _ = _publish(hub, tmp_path, make_sae, "jumprelu", release="embed", path="embed", hook="hook_embed",
                              sae_id="embed")
    with pytest.raises(Invalid, match="not supported yet: it reads hook 'hook_embed'"):
        load_pretrained("embed", "embed", index=index)


def test_whole_release_in_one_call(hub, tmp_path, make_sae, in_saelens_registry, tiny_llama_dir):
    from sae_lens import SAE

    folders = {}
    for layer in range(3):
        folders[f"layer_{layer}"] = tmp_path / f"saved-{layer}"
        make_sae("jumprelu", folders[f"layer_{layer}"], hook=f"blocks.{layer}.hook_resid_post")
    ids = [f"blocks.{layer}.hook_resid_post" for layer in range(3)]
    entry = _entry([{"id": i, "path": f"layer_{n}"} for n, i in enumerate(ids)])
    index = ReleaseIndex.load([hub.registry({"tiny-res": entry})], include_saelens=False)
    # the tiny model is a folder named tiny-llama: it matches the registry's model name
    assert release_sae_ids("tiny-res", str(tiny_llama_dir), index=index) == ids
    with pytest.raises(Invalid, match="trained on 'tiny-llama'"):
        release_sae_ids("tiny-res", "openai-community/gpt2", index=index)

    hub.publish(REPO, {"layer_0": folders["layer_0"]})  # one of three cached: the error names the other four files
    with pytest.raises(NotFound) as e:
        load_release("tiny-res", index=index)
    assert "release tiny-res (3 SAEs)" in e.value.detail and "Fetch 4 files" in e.value.detail
    assert "layer_1/sae_weights.safetensors layer_2/cfg.json" in e.value.detail and "layer_0/" not in e.value.detail

    hub.publish(REPO, folders)
    in_saelens_registry("tiny-res", entry)
    loaded = load_release("tiny-res", model_id=str(tiny_llama_dir), index=index)
    assert [p.sae_id for p in loaded] == ids
    assert [p.sae.cfg.hook_name for p in loaded] == ids and [p.sae.layer for p in loaded] == [0, 1, 2]
    for p in loaded:
        _assert_same(p.sae, SAE.from_pretrained("tiny-res", p.sae_id))
    assert [p.sae_id for p in load_release("tiny-res", sae_ids=[ids[2], ids[0]], index=index)] == [ids[2], ids[0]]


def test_list_releases_filters_and_reads_cached_cfgs(hub, tmp_path, make_sae, tiny_llama_dir):
    folder = tmp_path / "saved"
    make_sae("topk", folder, k=4, d_sae=96)
    hub.publish(REPO, {"layer_1": folder})
    reg = hub.registry({
        "tiny-res": _entry([{"id": "blocks.1.hook_resid_post", "path": "layer_1", "neuronpedia": "tiny/1-res"},
                            {"id": "blocks.2.hook_resid_post", "path": "layer_2"}], links={"model": "x"}),
        "tiny-mlp": _entry([{"id": "mlp_0", "path": "mlp_0"}]),
        "other": {**_entry([{"id": "blocks.0.hook_resid_pre", "path": "l0"}]), "model": "google/gemma-2-2b"},
    })
    index = ReleaseIndex.load([reg], include_saelens=False)
    names = [r.release for r in list_releases(str(tiny_llama_dir), index=index)]
    assert names == ["tiny-mlp", "tiny-res"]
    (rel,) = list_releases(str(tiny_llama_dir), "res", index=index)
    s1, s2 = rel.saes
    assert (s1.hook_name, s1.d_sae, s1.architecture, s1.cached, s1.neuronpedia_id) == \
        ("blocks.1.hook_resid_post", 96, "topk", True, "tiny/1-res")
    assert (s2.hook_name, s2.d_sae, s2.architecture, s2.cached) == ("blocks.2.hook_resid_post", None, None, False)
    d = rel.to_dict()
    assert d["supported"] and d["links"] == {"model": "x"} and d["saes"][0]["sae_id"] == "blocks.1.hook_resid_post"
    # a query matching only some SAE ids keeps just those (terms may mix release and SAE words)
    (rel,) = list_releases(None, "hook_resid_post blocks.2", index=index)
    assert [s.sae_id for s in rel.saes] == ["blocks.2.hook_resid_post"]
    (rel,) = list_releases(None, "TINY-RES 1-res", index=index)
    assert [s.sae_id for s in rel.saes] == ["blocks.1.hook_resid_post"]
    assert [r.release for r in list_releases("google/gemma-2-2b", index=index)] == ["other"]
    assert list_releases(None, "nothing-like-this", index=index) == []


def test_saelens_registry_is_read_and_extra_files_merge(hub):
    reg = hub.registry({"tiny-res": _entry([{"id": "blocks.1.hook_resid_post", "path": "layer_1"}])})
    index = ReleaseIndex.load([reg])
    assert index.sources[0].endswith("sae_lens/pretrained_saes.yaml") and index.sources[1] == str(reg)
    assert "tiny-res" in index and len(index) > 100
    gpt2 = {r.release: r for r in list_releases("openai-community/gpt2", index=index)}
    res_jb = gpt2["gpt2-small-res-jb"]
    assert res_jb.supported and res_jb.repo_id == "jbloom/GPT2-Small-SAEs-Reformatted"
    assert res_jb.saes[8].hook_name == "blocks.8.hook_resid_pre" and res_jb.saes[8].neuronpedia_id == "gpt2-small/8-res-jb"
    assert res_jb.saes[8].cached is False  # nothing of it is in the test's empty cache
    hook_z = gpt2["gpt2-small-hook-z-kk"]
    assert hook_z.format == "connor_rob_hook_z" and not hook_z.supported
    assert "not supported yet: connor_rob_hook_z" in hook_z.to_dict()["unsupported_reason"]
    with pytest.raises(NotFound) as e:  # offline: the real registry entry names the real files
        resolve("gpt2-small-res-jb", "blocks.8.hook_resid_pre", index=index)
    assert "hf download jbloom/GPT2-Small-SAEs-Reformatted blocks.8.hook_resid_pre/cfg.json" in e.value.detail
    with pytest.raises(Invalid, match="not supported yet: gemma_2"):
        resolve("gemma-scope-2b-pt-res", index.get("gemma-scope-2b-pt-res").saes[0].sae_id, index=index)


def test_bad_registry_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("my-release:\n  repo_id: nope\n  model: m\n  saes: []\n")
    with pytest.raises(Invalid, match="bad.yaml, release 'my-release': .*owner/name"):
        ReleaseIndex.load([bad], include_saelens=False)
    with pytest.raises(NotFound, match="does not exist"):
        ReleaseIndex.load([tmp_path / "missing.yaml"], include_saelens=False)
    with pytest.raises(NotFound, match="install sae-lens"):
        ReleaseIndex.load([], include_saelens=False)


def test_imported_sae_exports_back_to_saelens(hub, tmp_path, make_sae):
    """Import -> our SAELens export -> sae_lens loads it and encodes the same; our reload keeps provenance."""
    from sae_lens import SAE

    index, _, _, commit = _publish(hub, tmp_path, make_sae, "topk", k=5, rescale_acts_by_decoder_norm=True)
    ours = load_pretrained("tiny-res", "blocks.1.hook_resid_post", index=index)
    out = save_sae(ours, tmp_path / "export")
    _assert_same(ours, SAE.load_from_disk(str(out)))
    again = load_sae(out)
    assert again.cfg.extra["pretrained"]["revision"] == commit
    torch.testing.assert_close(again.W_enc, ours.W_enc)


def test_pre_v6_cfg_reads_like_saelens(tmp_path, make_sae):
    """A pre-6.0 cfg (hook_point, activation_fn_str, activation_fn_kwargs, no sae_lens_version): SAELens
    converts it on load; so do we."""
    from sae_lens import SAE

    for arch, extra in (("standard", {"activation_fn_str": "relu"}),
                        ("topk", {"activation_fn_str": "topk", "activation_fn_kwargs": {"k": 7}})):
        folder = tmp_path / f"old-{arch}"
        make_sae(arch, folder, **({"k": 7} if arch == "topk" else {}))
        cfg = json.loads((folder / "cfg.json").read_text())
        old = {"d_in": cfg["d_in"], "d_sae": cfg["d_sae"], "dtype": "float32", "device": "cpu",
               "hook_point": "blocks.1.hook_resid_post", "hook_point_layer": 1, "model_name": MODEL,
               "context_size": 64, "apply_b_dec_to_input": True, "normalize_activations": False, **extra}
        (folder / "cfg.json").write_text(json.dumps(old))
        theirs = SAE.load_from_disk(str(folder))
        ours = load_sae(folder)
        assert (ours.cfg.architecture, ours.cfg.hook_name, ours.cfg.model_id) == (arch, "blocks.1.hook_resid_post", MODEL)
        _assert_same(ours, theirs)


def test_jumprelu_activation_matches_saelens_semantics():
    """ReLU then the threshold mask: a negative threshold never passes a negative pre-activation."""
    from interpretability_workbench.sae.config import SAEConfig
    from interpretability_workbench.sae.model import SparseAutoencoder

    sae = SparseAutoencoder(SAEConfig(d_in=4, d_sae=3, architecture="jumprelu"))
    sae.threshold.copy_(torch.tensor([-1.0, 0.5, 0.0]))
    pre = torch.tensor([[-0.5, 0.4, 0.2], [2.0, 0.6, -0.1]])
    assert torch.equal(sae.activation(pre), torch.tensor([[0.0, 0.0, 0.2], [2.0, 0.6, 0.0]]))


def test_registry_folder_import_still_refuses_without_factor(tmp_path, make_sae):
    """load_sae on a bare folder (the zip import path): no registry, so no factor -> a clear refusal."""
    from interpretability_workbench.sae.io import SAEFormatError

    folder = tmp_path / "norm"
    make_sae("jumprelu", folder, normalize_activations="expected_average_only_in")
    with pytest.raises(SAEFormatError, match="norm_scaling_factor"):
        load_sae(Path(folder))
