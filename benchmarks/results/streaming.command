python -m benchmarks.streaming --model models/demo/model.onnx --iters 200 --warmup 20 --threads 2 --sim-walks 5 --json benchmarks/results/streaming.json --markdown benchmarks/results/streaming.md
