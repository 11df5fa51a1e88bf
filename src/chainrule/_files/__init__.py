"""Reading and writing chainrule's files, one job per module.

=====================  ==========================================================================
``container``          the safetensors container: header length, JSON header, raw tensors
``integrity``          the SHA-256 digest of a file's content, and atomic writes
``jsontext``           JSON text in files: written with string keys only, parsed strictly
``registry``           the modules a file may name, and the tensors each one holds
``architecture``       a ``Sequential`` as architecture JSON plus tensors by path, both ways
``optimizer_state``    an optimizer as JSON plus per-parameter state tensors, both ways
``model_file``         a whole model file: its metadata keys, what is checked, in what order
``checkpoint_file``    a model file with a training loop's ``meta`` and extra tensors
=====================  ==========================================================================

The public entry points are in :mod:`chainrule.serialization`.
"""
