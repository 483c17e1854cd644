python -m benchmarks.accuracy --walks 300 --json benchmarks/results/accuracy.json --markdown benchmarks/results/accuracy.md --plot benchmarks/results/accuracy.png
