python -m benchmarks.kiosk_path --walks 200 --threads 1 --json benchmarks/results/kiosk_path.json --md benchmarks/results/kiosk_path.md
