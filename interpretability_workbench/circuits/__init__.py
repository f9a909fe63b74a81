"""Circuit tracing: transcoders and prompt-level attribution graphs (after circuit-tracer and Anthropic's
"Circuit Tracing" methods paper, 2025).

**Transcoders** (``transcoder``). A per-layer transcoder replaces one MLP: it reads the MLP's input after
its norm (``blocks.L.ln2.hook_normalized``) and predicts the MLP's output (``blocks.L.hook_mlp_out``) as
``act(x W_enc + b_enc) W_dec + b_dec (+ x W_skip)``, with TopK, JumpReLU or ReLU activations.
``transcoder_step`` is the loss of one training batch. ``io`` reads and writes circuit-tracer transcoder
sets (``config.yaml`` + ``layer_{i}.safetensors``) and SAELens transcoder folders.

**Local replacement model** (``linearize``, ``replacement``). For one prompt, every MLP is replaced by
its transcoder plus an *error node* ``e = mlp(x) - transcoder(x)``, and the attention patterns and the
norm denominators are frozen at their values on the prompt. The transcoder activations are frozen too, so
each MLP becomes ``constant + x W_skip``: the whole residual stream is then *linear* in the node values
(feature activations, errors, token embeddings). With all error nodes the replacement model computes
exactly the original logits.

**Attribution graph** (``attribution``, ``graph``). Nodes: active features at each (layer, position),
error nodes (layer x position), token-embedding nodes, and logit nodes (the most probable next tokens up
to cumulative probability 0.95, at most 10, each read as its logit minus the mean logit). Edge ``s -> t``
is the direct effect in the linear model: with ``J`` the Jacobian of the residual-stream path from where
``s`` writes to where ``t`` reads (through frozen attention, frozen norms and skip terms only),
``A[t, s] = v_t^T J u_s``: ``u_s`` = ``a_s W_dec[s]`` (feature), the error vector, or the embedding;
``v_t`` = ``W_enc[:, t]`` (a feature's pre-activation) or ``W_U[tok] - mean W_U`` (a logit). Rows come
from backward passes, many targets per pass (vmapped over a batch of one-hot output gradients), features
visited in order of their influence on the logits, as circuit-tracer's ``attribute`` does.

**Pruning and scores** (``prune``, ``scores``): circuit-tracer's ``prune_graph`` (node threshold 0.8, edge
threshold 0.98 of cumulative influence, influence = ``w (I - A)^-1 - w`` on the row-normalised |A|) and
``compute_graph_scores`` (replacement and completeness scores), reproduced exactly.

**Validation** (``intervene``): ablate or steer a source feature in the real model (transcoder spliced in
with its error, so nothing else changes), measure the target, correlate with the graph's prediction.

**Export** (``export``): circuit-tracer's / Neuronpedia's graph JSON (``{slug}.json`` +
``graph-metadata.json``) and the workbench's own JSON / safetensors folder.

Differences from circuit-tracer: HF modules instead of TransformerLens hooks (one eager attention function
registered with transformers records or freezes patterns; norm modules are recomputed with their scale
detached); backward passes are batched with ``is_grads_batched`` over one forward at batch size 1 instead of
a forward at batch size ``batch_size``; an error node whose id would collide with a layer-0 feature's id
in the exported JSON is renamed. Llama-family, GPT-2 and GPT-NeoX models are supported.
"""
