"""The benchmark library every benchmark main uses: timing (timing.py), the machine and its software
(environment.py), the sample photos and inputs of a given size (photos.py), GEMM peaks and graph
FLOPs (peak.py), and report writing (report.py). Accuracy against a reference is
sanrt.evaluation's (compare.py, verify.py), not repeated here."""
