"""``jointportrait serve``: the web demo of every application (docs/SERVE.md).

- :mod:`.limits`: what an upload may be (size, pixels, type by content), checked before decoding;
- :mod:`.workspace`: the server's temporary folders and their clean-up;
- :mod:`.context`: the loaded model, its lock and the limits, shared by all sessions;
- :mod:`.handlers`: one plain function per tab over the library functions the CLI uses (no Gradio);
- :mod:`.app`: the Gradio page (tab registry, queue, API names) and :func:`~.app.launch`.

Only :mod:`.app` imports Gradio (the optional ``[serve]`` extra).
"""
