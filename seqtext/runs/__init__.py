"""The run directory: saving it, reading it back as untrusted input (every file and field checked),
the resume state of an interrupted run, and a run at a glance. Nothing else reads or writes the
files of a run; the product areas add their own files through these readers and writers.
"""
