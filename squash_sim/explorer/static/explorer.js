// The collapse explorer: picks the precomputed record of the chosen setting (data.js, written by
// squash_sim.explorer) and draws it with uPlot. It computes nothing the data does not hold: every
// number on the page (n*, the first identical pair, stalls, the verdict) comes from the record.
(function () {
  "use strict";
  const D = window.EXPLORER_DATA;
  const M = D.meta;
  // Okabe–Ito, the colour-blind-safe palette squash_sim's figures use.
  const C = { black: "#000000", orange: "#E69F00", sky: "#56B4E9", green: "#009E73",
              yellow: "#F0E442", blue: "#0072B2", vermillion: "#D55E00", purple: "#CC79A7",
              grey: "#777777" };
  const PE_NAMES = { none: "NoPE", rope: "RoPE", alibi: "ALiBi", sinusoidal: "sinusoidal",
                     learned: "learned" };
  const $ = (id) => document.getElementById(id);
  const timings = (window.explorerTimings = []);
  const marks = { distance: [], softmax: [], wv: [], attention: [] };

  function fill(select, items, names) {
    for (const item of items) {
      const option = document.createElement("option");
      option.value = String(item);
      option.textContent = names ? names[item] || item : String(item);
      select.appendChild(option);
    }
  }

  fill($("format"), M.formats);
  for (const [value, text] of Object.entries(M.policies)) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="policy" value="${value}"> ${text}`;
    $("policy").appendChild(label);
  }
  document.querySelector('input[name="policy"][value="pure"]').checked = true;
  fill($("accumulation"), M.accumulations);
  fill($("positional"), M.positionals, PE_NAMES);
  fill($("seed"), M.seeds);
  $("n").max = String(M.lengths.length - 1);
  $("n").value = String(M.lengths.length - 1);
  $("about").textContent = `Model: ${M.model}. Precomputed by squash_sim ${M.version} ` +
    `(${Object.keys(D.runs).length} settings, ${M.seconds} s); this page computes nothing.`;

  function setting() {
    const policy = document.querySelector('input[name="policy"]:checked').value;
    return {
      format: $("format").value, policy,
      accumulation: policy === "storage" ? M.storage_accumulation : $("accumulation").value,
      positional: $("positional").value, seed: $("seed").value,
      n: M.lengths[Number($("n").value)],
    };
  }
  const keyOf = (s) => [s.format, s.policy, s.accumulation, s.positional, s.seed].join("|");

  function verticals(name) {
    return (u) => {
      const ctx = u.ctx, dpr = window.devicePixelRatio || 1;
      for (const m of marks[name]) {
        const x = u.valToPos(m.x, "x", true);
        if (!Number.isFinite(x)) continue;
        ctx.save();
        ctx.strokeStyle = m.color;
        ctx.fillStyle = m.color;
        ctx.lineWidth = 2 * dpr;
        ctx.setLineDash((m.dash || []).map((d) => d * dpr));
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
        ctx.font = `bold ${13 * dpr}px sans-serif`;
        const text = m.label;
        const width = ctx.measureText(text).width;
        const left = x + width + 6 * dpr > u.bbox.left + u.bbox.width ? x - width - 4 * dpr : x + 4 * dpr;
        const top = u.bbox.top + (14 + 16 * (m.row || 0)) * dpr;
        ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
        ctx.fillRect(left - 2 * dpr, top - 12 * dpr, width + 4 * dpr, 16 * dpr);
        ctx.fillStyle = m.color;
        ctx.fillText(text, left, top);
        ctx.restore();
      }
    };
  }

  const panels = $("panels");
  const width = Math.max(320, Math.floor((panels.clientWidth - 14) / 2));
  const height = Math.max(170, Math.floor((window.innerHeight - panels.offsetTop) / 2) - 66);
  const line = (label, stroke, extra) => Object.assign({ label, stroke, width: 2,
    points: { show: false } }, extra || {});
  const dots = (label, fill) => ({ label, stroke: fill, fill, width: 0, paths: () => null,
    points: { show: true, size: 7, fill, stroke: fill } });
  const axis = (label, size, linear) => Object.assign({ label, labelSize: 16, size,
    font: "13px sans-serif", labelFont: "bold 13px sans-serif" },
    linear ? { values: (u, ticks) => ticks.map((v) => String(+v.toPrecision(3))) } : {});

  function chart(id, series, xlabel, ylabel, xlog, ylog) {
    const opts = {
      width, height, series: [{ label: xlabel }].concat(series),
      scales: { x: { time: false, distr: xlog ? 3 : 1, range: (u, lo, hi) => [lo, hi] },
                y: { distr: ylog ? 3 : 1 } },
      axes: [axis(xlabel, 36), axis(ylabel, 58, !ylog)],
      legend: { live: false },
      cursor: { show: false },
      hooks: { draw: [verticals(id)] },
    };
    const empty = [[1, 2]].concat(series.map(() => [null, null]));
    return new uPlot(opts, empty, $(id));
  }

  const charts = {
    distance: chart("distance", [
      line("‖yₙ − y*ₙ₊₁‖₁", C.blue),
      dots("identical pair (distance 0)", C.vermillion),
      dots("overflow (no verdict)", C.purple),
      line("format spacing ε", C.grey, { dash: [6, 4] }),
    ], "n (ones)", "distance", true, true),
    attention: chart("attention", [line("weight", C.blue, { width: 1.5 })],
                     "key position j", "attention weight", false, false),
    softmax: chart("softmax", [
      line("policy's accumulator", C.vermillion),
      line("exact (float64)", C.black, { dash: [6, 4], width: 1.5 }),
    ], "m (keys added)", "running sum", true, false),
    wv: chart("wv", [
      line("policy's accumulator", C.vermillion),
      line("exact (float64)", C.black, { dash: [6, 4], width: 1.5 }),
    ], "m (keys added)", "running sum", true, false),
  };

  function readout(rows) {
    const dl = $("readout");
    dl.innerHTML = "";
    for (const [id, label, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.id = "ro-" + id;
      dd.textContent = value === null || value === undefined ? "—" : String(value);
      dl.append(dt, dd);
    }
  }

  const lastOf = (array) => array[array.length - 1];
  const countOf = (array) => array.filter((v) => v !== null).length;

  function redraw() {
    const start = performance.now();
    const s = setting();
    const key = keyOf(s);
    const record = D.runs[key];
    $("accumulation").disabled = s.policy === "storage";
    $("n-label").textContent = `N = ${s.n}`;
    if (!record) {
      $("verdict").textContent = `Not precomputed: ${key} (run squash-sim explore --full).`;
      return;
    }
    const at = record.at[String(s.n)];
    // Distance panel: n = 1..N of the one-pass sweep; zero distances drawn as marks on a floor.
    const n = [], l1 = [], same = [], bad = [], eps = [];
    let low = record.spacing;
    for (let i = 0; i < s.n; i++) {
      const v = record.l1[i];
      if (v !== null && v > 0 && v < low) low = v;
    }
    const floor = low / 4;
    for (let i = 0; i < s.n; i++) {
      const status = record.status[i];
      const v = record.l1[i];
      n.push(i + 1);
      l1.push(v !== null && v > 0 ? v : null);
      same.push(status === "bit-identical" ? floor : null);
      bad.push(status === "overflow" || status === "non-finite" ? floor : null);
      eps.push(record.spacing);
    }
    marks.distance = [];
    if (at.lasting !== null) {
      marks.distance.push({ x: at.lasting, color: C.green, label: `lasting collapse n* = ${at.lasting}` });
    }
    if (at.first_identical !== null && at.first_identical !== at.lasting) {
      marks.distance.push({ x: at.first_identical, color: C.vermillion, dash: [3, 3], row: 1,
                            label: `first identical n = ${at.first_identical}` });
    }
    charts.distance.setData([n, l1, same, bad, eps]);
    // Last row of attention.
    const keys = at.attention.map((_, j) => j);
    charts.attention.setData([keys, at.attention]);
    // Running sums, with where each stopped growing.
    for (const name of ["softmax", "wv"]) {
      const sums = at[name];
      marks[name] = sums.stall === null ? [] :
        [{ x: sums.stall, color: C.purple, label: `stopped growing at key ${sums.stall}` }];
      charts[name].setData([sums.m, sums.sum, sums.exact]);
    }
    $("verdict").textContent = at.verdict;
    const drawn = (name, index) => charts[name].data[index];
    // uPlot draws in a microtask queued by setData; this one runs after it.
    Promise.resolve().then(() => {
      const ms = performance.now() - start;
      timings.push(ms);
      readout([
        ["key", "setting", key],
        ["precision", "policy", record.precision],
        ["status", "status", at.status],
        ["lasting", "lasting n*", at.lasting],
        ["first", "first identical", at.first_identical],
        ["share", "identical pairs", `${(100 * at.identical_share).toPrecision(3)}%`],
        ["softmax-stall", "softmax stall", at.softmax.stall],
        ["wv-stall", "w·v stall", at.wv.stall],
        ["drawn-distance-last", "drawn ‖Δ‖₁ at N", lastOf(drawn("distance", 1))],
        ["drawn-identical", "drawn identical", countOf(drawn("distance", 2))],
        ["drawn-attention-count", "drawn weights", drawn("attention", 1).length],
        ["drawn-attention-last", "drawn last weight", lastOf(drawn("attention", 1))],
        ["drawn-softmax-last", "drawn softmax Σ", lastOf(drawn("softmax", 1))],
        ["drawn-wv-last", "drawn w·v Σ", lastOf(drawn("wv", 1))],
        ["redraw-ms", "redraw (ms)", ms.toFixed(1)],
      ]);
      document.body.dataset.redraws = String(timings.length);
    });
  }

  for (const id of ["format", "accumulation", "positional", "n", "seed"]) {
    $(id).addEventListener("input", redraw);
  }
  for (const radio of document.querySelectorAll('input[name="policy"]')) {
    radio.addEventListener("change", redraw);
  }
  redraw();
})();
