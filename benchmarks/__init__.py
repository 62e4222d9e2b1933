"""sanrt's benchmarks: thin mains (fps.py, gpu_check.py, eval_miou.py, ...) over `lib/`, each writing
a report under results/<machine>/. Every figure is a median over warmed-up runs, beside the
strongest PyTorch baseline in the same run, with the machine named. They may import every sanrt
package; nothing imports them."""
