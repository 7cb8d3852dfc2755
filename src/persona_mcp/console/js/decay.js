// How a memory's importance ages, from the decay config (memory.decay_stats).
//
// The same formulas as the server's decay pass (src/persona_mcp/store/lifecycle.py,
// `_decay_expression`), rate per hour, h hours elapsed, never below the floor
// `min_importance`, and never raised:
//   linear        i - rate*h
//   exponential   i * exp(-rate*h)
//   logarithmic   i - rate*ln(1+h)
//   step          i - rate*24*floor(h/24)          (once per full day)
//   access_based  i * exp(-rate*h / (1 + 0.5*accesses))
// A pinned memory never decays. tests/test_console.py checks these against the server.

export const STEP_HOURS = 24;

/** Importance after one decay pass that covers `hours`. */
export function afterPass(importance, hours, config, accessCount = 0) {
  const { mode, rate, min_importance: floor } = config;
  if (importance <= floor) return importance;
  let next;
  switch (mode) {
    case "linear":
      next = importance - rate * hours;
      break;
    case "exponential":
      next = importance * Math.exp(-rate * hours);
      break;
    case "logarithmic":
      next = importance - rate * Math.log1p(hours);
      break;
    case "step":
      next = importance - rate * STEP_HOURS * Math.floor(hours / STEP_HOURS);
      break;
    case "access_based":
      next = importance * Math.exp((-rate * hours) / (1 + 0.5 * accessCount));
      break;
    default:
      throw new Error(`unknown decay mode ${mode}`);
  }
  return next < importance ? Math.max(floor, next) : importance;
}

/**
 * Importance `hours` from now, as the background job would age it: one pass every
 * `interval_seconds`. Every mode but logarithmic composes (two passes of a and b hours
 * equal one of a+b), so its curve is the single pass; a logarithmic memory loses
 * rate*ln(1+interval) at each pass.
 */
export function projectedImportance(memory, config, hours) {
  if (memory.pinned) return memory.importance;
  if (config.mode === "logarithmic") {
    const interval = Math.max(config.interval_seconds / 3600, 1e-6);
    const passes = Math.floor(hours / interval);
    let value = memory.importance;
    for (let i = 0; i < Math.min(passes, 100000); i += 1) {
      const next = afterPass(value, interval, config, memory.access_count);
      if (next === value) break;
      value = next;
    }
    return value;
  }
  return afterPass(memory.importance, hours, config, memory.access_count);
}

/** Points [{hours, importance}] over `days`, `steps` + 1 of them, from now. */
export function decayCurve(memory, config, days = 30, steps = 60) {
  const points = [];
  for (let i = 0; i <= steps; i += 1) {
    const hours = (days * 24 * i) / steps;
    points.push({ hours, importance: projectedImportance(memory, config, hours) });
  }
  return points;
}
