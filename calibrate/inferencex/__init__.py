"""Reading the public InferenceX benchmark repository (SemiAnalysisAI/InferenceX): its master configs,
launch scripts and benchmark client, at the commit in effect when a run was measured. Configs, scripts
and client code only: never its measured result files (they are an independent check)."""
