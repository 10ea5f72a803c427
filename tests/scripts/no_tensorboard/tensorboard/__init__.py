# Test-only stand-in (on PYTHONPATH in qerl_tensorboard_test.py): a python
# whose tensorboard cannot be imported, as on a machine without it.
raise ImportError("No module named 'tensorboard' (hidden by the test)")
