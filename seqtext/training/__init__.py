"""Training, shared by every model kind: the loop (loop.py) with its stops and gradient log, the
session that holds a run directory while it is written (session.py), and the processes of a run
under torchrun (distributed.py, replicas.py, shards.py). The product areas say what differs (a Task).
"""
