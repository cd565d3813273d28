// #/submit: choose an app, its parameters, inputs (uploaded or typed),
// the output and options; submitting opens the new job's page.

import { api, upload } from '../api.js';
import { h, replace } from '../dom.js';
import { alertBox, pageHead, showError } from '../components.js';
import { navigate } from '../router.js';
import { bytes, percent, stamp } from '../format.js';

const UPLOADS_KEY = 'quern.uploads';
const MIB = 1024 * 1024;

/** Uploads of this browser session: [{name, location, bytes, use}]. */
function loadUploads() {
  try {
    return (JSON.parse(sessionStorage.getItem(UPLOADS_KEY)) || []).map((u) => ({ ...u, use: false }));
  } catch {
    return [];
  }
}

function saveUploads(list) {
  const keep = list.slice(-20).map(({ name, location, bytes: b }) => ({ name, location, bytes: b }));
  sessionStorage.setItem(UPLOADS_KEY, JSON.stringify(keep));
}

function field(id, label, input, hint, required = false) {
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  input.id = id;
  return h('div', { class: 'field' },
    h('div', { class: 'label-row' }, h('label', { for: id }, label),
      required ? h('span', { class: 'req', 'aria-hidden': 'true' }, 'required') : null),
    input, hintEl);
}

const num = (attrs = {}) => h('input', { type: 'number', inputmode: 'numeric', min: 1, ...attrs });

export default async function submit(ctx) {
  ctx.title('Submit a job');
  const apps = await api('/apps', { signal: ctx.signal });
  if (!ctx.isCurrent()) return;

  const alert = alertBox();
  const appSelect = h('select', { required: true },
    apps.map((a) => h('option', { value: a.name }, `${a.name}${a.workers ? '' : ' (no worker)'}`)));
  const about = h('p', { class: 'hint', id: 'app-about' });
  appSelect.setAttribute('aria-describedby', about.id);
  const paramsBox = h('div', { class: 'form-grid' });
  let paramInputs = [];

  const fileInput = h('input', { type: 'file', multiple: true });
  const uploadStatus = h('p', { class: 'small muted upload-status', role: 'status' });
  const uploadList = h('ul', { class: 'uploads', 'aria-label': 'Uploaded files' });
  let uploads = loadUploads();
  let pendingUpload = null;

  const locations = h('textarea', { rows: 3, spellcheck: 'false', placeholder: '/data/books/*.txt\ns3://bucket/logs/' });
  const output = h('input', { type: 'text', required: true, spellcheck: 'false', autocomplete: 'off' });
  let outputEdited = false;
  output.addEventListener('input', () => { outputEdited = true; });
  const reducers = num({ placeholder: 'app default' });
  const splitMiB = num({ placeholder: '64', step: 'any' });
  const sortMiB = num({ placeholder: '64', step: 'any' });
  const maxAttempts = num({ placeholder: '4' });
  const priority = h('input', { type: 'number', inputmode: 'numeric', step: 1, placeholder: '0' });
  const shuffle = h('input', { type: 'text', spellcheck: 'false', placeholder: 's3://bucket/shuffle/' });
  const skipBad = h('input', { type: 'checkbox', id: 'opt-skip' });
  const submitBtn = h('button', { type: 'submit', class: 'btn' }, 'Submit job');

  function chooseApp() {
    const app = apps.find((a) => a.name === appSelect.value);
    const offered = app && app.workers
      ? `Offered by ${app.workers} ${app.workers === 1 ? 'worker' : 'workers'}.`
      : 'No alive worker offers it now.';
    const help = app && app.about ? app.about.replace(/\.?$/, '.') : '';
    about.textContent = app ? [help, offered].filter(Boolean).join(' ') : '';
    paramInputs = (app && app.params ? app.params : []).map((p) => {
      const input = h('input', { type: 'text', name: p.name, required: !!p.required, spellcheck: 'false' });
      return { p, input, el: field(`param-${p.name}`, p.name, input, p.help, p.required) };
    });
    replace(paramsBox, paramInputs.length ? paramInputs.map((x) => x.el) : h('p', { class: 'muted small' }, 'This app takes no parameters.'));
    if (!outputEdited) output.value = app ? `output-${app.name}-${stamp()}` : '';
  }
  appSelect.addEventListener('change', chooseApp);

  function renderUploads() {
    replace(uploadList, uploads.map((u, i) => {
      const box = h('input', { type: 'checkbox', id: `upload-${i}`, checked: u.use });
      box.addEventListener('change', () => { u.use = box.checked; });
      return h('li', {},
        h('label', { class: 'check', for: box.id }, box, `Use ${u.name}`),
        h('span', { class: 'muted' }, bytes(u.bytes)),
        h('code', { class: 'upload-location' }, u.location));
    }));
    uploadList.hidden = uploads.length === 0;
  }

  fileInput.addEventListener('change', () => {
    const files = [...fileInput.files];
    if (!files.length) return;
    showError(alert, null);
    const total = files.reduce((n, f) => n + f.size, 0);
    uploadStatus.textContent = `Uploading ${files.length} ${files.length === 1 ? 'file' : 'files'} (${bytes(total)})…`;
    submitBtn.disabled = true;
    pendingUpload = upload(files, (f) => { uploadStatus.textContent = `Uploading… ${percent(f)}`; })
      .then((done) => {
        const fresh = new Set(done.map((d) => d.location));
        uploads = uploads.filter((u) => !fresh.has(u.location)).concat(done.map((d) => ({ ...d, use: true })));
        saveUploads(uploads);
        renderUploads();
        uploadStatus.textContent = `Uploaded ${done.length} ${done.length === 1 ? 'file' : 'files'}.`;
        fileInput.value = '';
      })
      .catch((e) => {
        uploadStatus.textContent = '';
        showError(alert, e);
        throw e;
      })
      .finally(() => { submitBtn.disabled = false; pendingUpload = null; });
    pendingUpload.catch(() => {});
  });

  function spec() {
    const inputs = [...uploads.filter((u) => u.use).map((u) => u.location),
      ...locations.value.split('\n').map((l) => l.trim()).filter(Boolean)];
    const body = { app: appSelect.value, params: {}, inputs: [...new Set(inputs)], output: output.value.trim() };
    for (const { p, input } of paramInputs) if (input.value !== '') body.params[p.name] = input.value;
    const intOf = (el) => (el.value === '' ? undefined : Number(el.value));
    const mib = (el) => (el.value === '' ? undefined : Math.round(Number(el.value) * MIB));
    const opt = { reducers: intOf(reducers), split_size: mib(splitMiB), sort_buffer: mib(sortMiB), max_attempts: intOf(maxAttempts), priority: intOf(priority) };
    for (const [k, v] of Object.entries(opt)) if (v !== undefined) body[k] = v;
    if (skipBad.checked) body.skip_bad_records = true;
    if (shuffle.value.trim()) body.shuffle = shuffle.value.trim();
    return body;
  }

  async function onSubmit(e) {
    e.preventDefault();
    showError(alert, null);
    submitBtn.disabled = true;
    submitBtn.textContent = 'Submitting…';
    try {
      if (pendingUpload) await pendingUpload;
      const body = spec();
      if (!body.inputs.length) throw new Error('Add at least one input: upload files or type locations.');
      const job = await api('/jobs', { method: 'POST', body, signal: ctx.signal });
      navigate(`jobs/${job.id}`);
    } catch (err) {
      if (err.name === 'AbortError' || !ctx.isCurrent()) return;
      showError(alert, err);
      alert.scrollIntoView({ block: 'nearest' });
    } finally {
      submitBtn.disabled = false;
      submitBtn.textContent = 'Submit job';
    }
  }

  const form = h('form', { class: 'form', onsubmit: onSubmit },
    h('section', { class: 'panel form', 'aria-labelledby': 'app-title' },
      h('h2', { id: 'app-title' }, 'App and parameters'),
      field('submit-app', 'App', appSelect), about,
      h('fieldset', {}, h('legend', {}, 'Parameters'), paramsBox)),
    h('section', { class: 'panel form', 'aria-labelledby': 'input-title' },
      h('h2', { id: 'input-title' }, 'Input'),
      h('div', {}, field('submit-files', 'Upload files', fileInput, 'Each file uploads when chosen; tick the uploads the job reads.'),
        uploadStatus, uploadList),
      field('submit-locations', 'Input locations', locations, 'Paths, directories, globs or s3:// URLs the workers can read, one per line.')),
    h('section', { class: 'panel form', 'aria-labelledby': 'output-title' },
      h('h2', { id: 'output-title' }, 'Output and options'),
      h('div', { class: 'form-grid' },
        field('submit-output', 'Output', output, 'Must not exist yet. A plain name goes in the coordinator\'s output area; a path or an s3:// URL is used as given.', true),
        field('submit-reducers', 'Reducers', reducers, 'Empty: the app’s default.')),
      h('details', { class: 'advanced' },
        h('summary', {}, 'Advanced options'),
        h('div', { class: 'form-grid' },
          field('opt-split', 'Split size (MiB)', splitMiB, 'Input bytes per map task.'),
          field('opt-sort', 'Sort buffer (MiB)', sortMiB, 'Memory per map task before spilling.'),
          field('opt-attempts', 'Max attempts', maxAttempts, 'Per task, before the job fails.'),
          field('opt-priority', 'Priority', priority, 'Higher runs first.'),
          field('opt-shuffle', 'Shuffle location', shuffle, 'Optional s3:// prefix for map outputs.')),
        h('label', { class: 'check', for: skipBad.id }, skipBad, 'Skip records whose map call panics'))),
    h('div', { class: 'form-actions' }, submitBtn, h('a', { href: '#/jobs', class: 'btn btn-quiet' }, 'Cancel')));

  ctx.main.append(
    pageHead({ crumbs: [{ label: 'Jobs', href: '#/jobs' }, { label: 'Submit' }], title: 'Submit a job', sub: 'Run an app over your input; the job page follows it live.' }),
    alert,
    apps.length ? form : h('div', { class: 'panel' }, h('p', {}, 'No worker offers an app yet. Start a worker, then come back.')));
  if (apps.length) {
    chooseApp();
    renderUploads();
  }
}
