// The end-of-test summary of every scenario: the raw k6 summary as RESULT_BASE.json and a
// short markdown report (thresholds, then every metric that has values) as RESULT_BASE.md,
// also printed. The runner adds the machine, the command and the server's figures to it.

const TREND_COLUMNS = ['med', 'p(90)', 'p(99)', 'max'];

function number(value) {
  if (value === undefined || value === null) return '';
  if (Number.isInteger(value)) return String(value);
  return value >= 100 ? value.toFixed(0) : value.toFixed(2);
}

function isTime(name, metric) {
  return metric.contains === 'time';
}

function markdown(data) {
  const scenario = __ENV.SCENARIO || 'k6';
  const lines = [];
  const thresholdRows = [];
  let failed = 0;
  for (const [name, metric] of Object.entries(data.metrics)) {
    for (const [expression, result] of Object.entries(metric.thresholds || {})) {
      if (!result.ok) failed += 1;
      thresholdRows.push(`| \`${name}\` | \`${expression}\` | ${result.ok ? 'pass' : '**FAIL**'} |`);
    }
  }
  lines.push(`## k6: ${scenario}: ${failed === 0 ? 'all thresholds pass' : `${failed} threshold(s) FAILED`}`);
  lines.push('');
  lines.push('| metric | threshold | result |', '|---|---|---|', ...thresholdRows.sort());
  lines.push('');
  const trends = [];
  const others = [];
  for (const name of Object.keys(data.metrics).sort()) {
    const metric = data.metrics[name];
    const values = metric.values;
    if (metric.type === 'trend') {
      if (!values.count && values.count !== undefined) continue;
      const unit = isTime(name, metric) ? ' ms' : '';
      trends.push(`| \`${name}\` | ${values.count === undefined ? '' : values.count} | ` +
        `${TREND_COLUMNS.map((column) => number(values[column]) + unit).join(' | ')} |`);
    } else if (metric.type === 'counter') {
      others.push(`| \`${name}\` | ${number(values.count)} | ${number(values.rate)}/s |`);
    } else if (metric.type === 'rate') {
      others.push(`| \`${name}\` | ${number(values.passes)} of ${number(values.passes + values.fails)} | ` +
        `${number(values.rate * 100)} % |`);
    } else if (metric.type === 'gauge') {
      others.push(`| \`${name}\` | ${number(values.value)} (max ${number(values.max)}) | |`);
    }
  }
  lines.push('| trend | count | p50 | p90 | p99 | max |', '|---|---|---|---|---|---|', ...trends);
  lines.push('');
  lines.push('| metric | value | rate |', '|---|---|---|', ...others);
  lines.push('');
  return lines.join('\n');
}

export function handleSummary(data) {
  const base = __ENV.RESULT_BASE;
  const report = markdown(data);
  const out = { stdout: `${report}\n` };
  if (base) {
    out[`${base}.json`] = JSON.stringify(data, null, 2);
    out[`${base}.md`] = report;
  }
  return out;
}
