"""Extensions: plugins as WebAssembly components, a registry, per-tenant grants, a sandbox."""
