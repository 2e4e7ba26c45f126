// Small DOM helpers. Everything is built with createElement and textContent: no HTML strings,
// so nothing an operator or a customer typed can become markup, and no inline style attribute
// (the Content-Security-Policy forbids them).

/**
 * @typedef {string | number | Node | null | undefined | false} Child
 * @typedef {{[name: string]: string | number | boolean | null | undefined | EventListener}} Attrs
 */

/**
 * Creates an element. Attributes: `class`, `for`, `text`, `on<event>` (listener), booleans
 * (`disabled`, `checked`, `selected`, `required`, `hidden`: set when true), anything else as an
 * attribute; null/undefined/false are skipped.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'text') {
      el.textContent = String(value);
    } else if (name === 'value' && 'value' in el) {
      /** @type {HTMLInputElement} */ (/** @type {unknown} */ (el)).value = String(value);
    } else if (value === true) {
      el.setAttribute(name, '');
      if (name === 'checked' || name === 'selected') {
        /** @type {any} */ (el)[name] = true;
      }
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {(Child | Child[])[]} children
 */
export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'object' ? child : String(child));
  }
}

/**
 * Replaces an element's children.
 * @param {Element} el
 * @param {...(Child | Child[])} children
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let nextId = 0;
/** A unique element id, for `<label for>`. @param {string} stem */
export function uid(stem) {
  nextId += 1;
  return `${stem}-${nextId}`;
}

/**
 * A labelled form field: `<div class="field"><label for>…</label>input<p class=hint></div>`.
 * @param {string} label
 * @param {HTMLElement} input must not have an id yet, or has the one to use
 * @param {string} [hint]
 */
export function field(label, input, hint) {
  if (!input.id) input.id = uid('f');
  const hintEl = hint ? h('p', { class: 'hint', id: `${input.id}-hint`, text: hint }) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: input.id, text: label }), input, hintEl);
}

/**
 * A table with a header row and a caption (the caption is the table's accessible name).
 * @param {string} caption
 * @param {string[]} headers
 * @param {Node[][]|(Child | Child[])[][]} rows
 * @param {string} [empty] shown in one cell when there are no rows
 */
export function table(caption, headers, rows, empty) {
  const body = h('tbody');
  if (rows.length === 0 && empty) {
    body.append(h('tr', {}, h('td', { colspan: headers.length, class: 'empty', text: empty })));
  }
  for (const row of rows) {
    const tr = h('tr');
    for (const cell of row) tr.append(h('td', {}, /** @type {Child | Child[]} */ (cell)));
    body.append(tr);
  }
  return h(
    'table',
    {},
    h('caption', { text: caption }),
    h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col', text })))),
    body,
  );
}
