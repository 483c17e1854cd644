python -m benchmarks.latency --suite demo --iters 200 --warmup 20 --threads 2 --json benchmarks/results/latency.json --markdown benchmarks/results/latency.md --plot benchmarks/results/latency.png
