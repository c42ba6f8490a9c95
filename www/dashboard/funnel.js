// Funnels (`#/funnels?step=page:/pricing&step=event:signup`): 2–8 steps,
// each a page path or a custom event; how many visits reach each step in
// order, and how many drop off between steps.

import { h, number, percent, empty } from './dom.js';
import { api, scope, range, route, hashOf } from './state.js';

const MIN_STEPS = 2;
const MAX_STEPS = 8;

/** The steps in the URL, as `{kind, value}` (`kind` is `page` or `event`). */
function stepsOf(params) {
  return params.getAll('step').map((s) => {
    const colon = s.indexOf(':');
    const kind = s.slice(0, colon);
    return { kind: kind === 'event' ? 'event' : 'page', value: colon < 0 ? s : s.slice(colon + 1) };
  }).slice(0, MAX_STEPS);
}

export async function renderFunnel() {
  const { filters, params } = route();
  const steps = stepsOf(params);
  const r = range();
  const complete = steps.filter((s) => s.value.trim() !== '');
  // Suggestions for the inputs, and the answer, at once.
  const [pages, events, answer] = await Promise.all([
    api('/v1/breakdown', scope(filters, { ...r, dimension: 'page', limit: 50 })).catch(() => ({ rows: [] })),
    api('/v1/breakdown', scope(filters, { ...r, dimension: 'event_name', limit: 50 })).catch(() => ({ rows: [] })),
    complete.length >= MIN_STEPS
      ? api('/v1/funnel', scope(filters, { ...r, step: complete.map((s) => `${s.kind}:${s.value.trim()}`) }))
      : null,
  ]);
  return [
    builder(steps.length ? steps : [{ kind: 'page', value: '' }, { kind: 'event', value: '' }], pages.rows, events.rows),
    answer ? result(answer.steps) : h('section', { class: 'panel' }, empty(
      'Pick at least two steps — a page path such as /pricing, or a custom event such as signup — then "Show funnel".')),
  ];
}

function builder(initial, pages, events) {
  const list = h('ol', { class: 'steps' });
  const addButton = h('button', { type: 'button', id: 'add-step', class: 'button', onclick: () => add({ kind: 'page', value: '' }) }, '+ Add step');
  const refresh = () => {
    const items = [...list.children];
    items.forEach((li, i) => {
      li.querySelector('.n').textContent = String(i + 1);
      li.querySelector('.remove').disabled = items.length <= MIN_STEPS;
    });
    addButton.disabled = items.length >= MAX_STEPS;
  };
  const add = (step) => {
    const kind = h('select', { class: 'kind', 'aria-label': 'Step type' },
      h('option', { value: 'page', selected: step.kind === 'page' }, 'Page'),
      h('option', { value: 'event', selected: step.kind === 'event' }, 'Custom event'));
    const value = h('input', {
      class: 'value', value: step.value, 'aria-label': 'Page path or event name', spellcheck: 'false',
      list: step.kind === 'event' ? 'funnel-events' : 'funnel-pages',
      placeholder: step.kind === 'event' ? 'signup' : '/pricing',
    });
    kind.addEventListener('change', () => {
      value.setAttribute('list', kind.value === 'event' ? 'funnel-events' : 'funnel-pages');
      value.placeholder = kind.value === 'event' ? 'signup' : '/pricing';
    });
    const li = h('li', { class: 'step' }, h('span', { class: 'n', 'aria-hidden': 'true' }), kind, value,
      h('button', {
        type: 'button', class: 'remove', 'aria-label': 'Remove this step',
        onclick: () => { li.remove(); refresh(); },
      }, '×'));
    list.append(li);
    refresh();
    if (step.value === '' && list.children.length > MIN_STEPS) value.focus();
  };
  initial.forEach(add);
  const submit = (e) => {
    e.preventDefault();
    const steps = [...list.children].map((li) =>
      `${li.querySelector('.kind').value}:${li.querySelector('.value').value.trim()}`);
    location.hash = hashOf('/funnels', route().filters, steps.map((s) => ['step', s]));
  };
  return h('form', { class: 'panel funnel-builder', onsubmit: submit },
    h('div', { class: 'panel-head' }, h('h2', {}, 'Funnel'),
      h('span', { class: 'muted' }, `${MIN_STEPS}–${MAX_STEPS} steps, in order, within one visit`)),
    list,
    h('datalist', { id: 'funnel-pages' }, pages.map((x) => h('option', { value: x.key }))),
    h('datalist', { id: 'funnel-events' }, events.map((x) => h('option', { value: x.key }))),
    h('div', { class: 'pager' }, addButton, h('button', { type: 'submit', class: 'primary', id: 'show-funnel' }, 'Show funnel')));
}

function result(steps) {
  const first = steps.length ? steps[0].visits : 0;
  return h('section', { class: 'panel funnel-result', id: 'funnel' },
    h('div', { class: 'panel-head' }, h('h2', {}, 'Visits reaching each step'),
      h('span', { class: 'muted' }, `${percent(steps.length ? steps[steps.length - 1].conversion_rate : 0)} of the first step's visits reach the last`)),
    first === 0 ? empty('No visit reached the first step in this range. Check the path (a page key is its path, like /pricing) or try a longer range.') : null,
    h('ol', { class: 'funnel' }, steps.map((s, i) => {
      const before = i ? steps[i - 1].visits : null;
      const lost = before == null ? null : before - s.visits;
      const colon = s.key.indexOf(':');
      return h('li', { class: 'funnel-step', 'data-step': String(s.step) },
        h('div', { class: 'what' },
          h('span', { class: 'n' }, String(s.step)),
          h('span', { class: 'kind' }, s.key.slice(0, colon) === 'event' ? 'event' : 'page'),
          h('span', { class: 'key' }, s.key.slice(colon + 1))),
        h('div', { class: 'track' }, h('span', {
          class: 'fill', style: `width:${first ? (100 * s.visits) / first : 0}%`,
        })),
        h('div', { class: 'numbers' },
          h('span', { class: 'visits' }, `${number.format(s.visits)} visit${s.visits === 1 ? '' : 's'}`),
          h('span', { class: 'rate' }, percent(s.conversion_rate)),
          lost == null ? null : h('span', { class: 'drop' },
            `${number.format(lost)} dropped (${percent(before ? lost / before : 0)})`)));
    })));
}
