"""A model added from outside ``pipelines/``, as docs/models.md ("Adding a model") walks through:
its package (this folder: ``trainer.py``), one spec entry (``spec.py``) and its docs page
(``README.md``). ``tests/models/test_adding_a_model.py`` registers it and runs it through the
real train -> gate -> ONNX export -> contract path."""
