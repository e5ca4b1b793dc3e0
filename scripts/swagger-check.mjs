#!/usr/bin/env node
// Drives the Swagger UI of a running KeyVault Proxy the way a person would, in headless Chromium:
//
//   1. without authorizing, "Try it out" on GET /api/profiles/{name}/token shows 401;
//   2. Authorize -> paste the API key under `bearer` -> Authorize -> Close;
//   3. GET /api/profiles/{name}/token with name = PROFILE shows 200 and a body with "access_token";
//   4. POST /api/Token/kv-certificate with the example body edited to the profile's values shows 200
//      (the browser sends this POST with an Origin header, which the server must accept).
//
// Usage: node scripts/swagger-check.mjs BASE_URL API_KEY PROFILE [SCREENSHOT_DIR]
//
// Needs playwright-core (no bundled browsers) in .tools/playwright:
//   npm install --no-audit --no-fund --prefix .tools/playwright playwright-core
// and Chromium at /usr/bin/chromium (override with CHROMIUM=/path). Exits non-zero on any failed check.

import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const toolDir = join(repo, '.tools', 'playwright');

const [baseArg, apiKey, profile, shotDir] = process.argv.slice(2);
if (!baseArg || !apiKey || !profile) {
  console.error('usage: node scripts/swagger-check.mjs BASE_URL API_KEY PROFILE [SCREENSHOT_DIR]');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');

let chromium;
try {
  ({ chromium } = createRequire(join(toolDir, 'package.json'))('playwright-core'));
} catch (e) {
  console.error(
    `FAIL: playwright-core not found under ${toolDir}/node_modules (${e.message.split('\n')[0]}).\n` +
      `Install it with: npm install --no-audit --no-fund --prefix ${toolDir} playwright-core`,
  );
  process.exit(2);
}

const UI_TIMEOUT = 15_000; // page and widget appearance
const CALL_TIMEOUT = 60_000; // one token request (may reach the vault and the tenant)

class CheckFailed extends Error {}
const failures = [];
function check(ok, message) {
  if (ok) {
    console.log(`ok   ${message}`);
  } else {
    console.log(`FAIL ${message}`);
    failures.push(message);
  }
  return ok;
}
function must(ok, message) {
  if (!check(ok, message)) throw new CheckFailed(message);
}
function fail(message) {
  return must(false, message);
}

if (shotDir) mkdirSync(shotDir, { recursive: true });
async function shoot(locator, name) {
  if (!shotDir) return;
  const file = join(shotDir, name);
  await locator.screenshot({ path: file, animations: 'disabled', timeout: UI_TIMEOUT });
  console.log(`     screenshot ${file}`);
}

// What the browser saw besides the checks: console errors, page errors, failed requests, CSP reports.
// Each entry is [phase, text]; during the 'unauthorized' phase a 401 is what we want to see.
const observed = [];
let phase = 'load';
let browserStarted = false;

async function profileValues() {
  let response;
  try {
    response = await fetch(`${base}/api/profiles`, {
      headers: { Authorization: `Bearer ${apiKey}` },
      signal: AbortSignal.timeout(UI_TIMEOUT),
    });
  } catch (e) {
    fail(`GET ${base}/api/profiles from Node: ${e.cause?.message ?? e.message} (is the server running?)`);
  }
  must(
    response.status === 200,
    `GET /api/profiles from Node answers 200 (got ${response.status}${response.status === 401 ? ': the API key was refused' : ''})`,
  );
  const profiles = await response.json();
  const p = profiles.find((x) => x.name === profile);
  must(Boolean(p), `profile '${profile}' is listed by GET /api/profiles (have: ${profiles.map((x) => x.name).join(', ') || 'none'})`);
  return p;
}

/** The operation block of METHOD PATH, e.g. ('get', '/api/profiles/{name}/token'). */
function operation(page, method, path) {
  return page.locator(`.opblock.opblock-${method.toLowerCase()}`).filter({
    has: page.locator('.opblock-summary-path', { hasText: new RegExp(`^\\s*${escapeRe(path)}\\s*$`) }),
  });
}
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function expand(op) {
  await op.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  if (!(await op.evaluate((el) => el.classList.contains('is-open')))) {
    await op.locator('.opblock-summary-control').click();
  }
  await op.locator('.opblock-body').waitFor({ state: 'visible', timeout: UI_TIMEOUT });
}

async function tryItOut(op) {
  const tryOut = op.getByRole('button', { name: 'Try it out' });
  await tryOut.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  await tryOut.click();
  await op.getByRole('button', { name: 'Execute' }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
}

/**
 * Clicks Execute and waits for the live response. Returns the HTTP status the browser received, the
 * code and body the UI displays.
 */
async function execute(page, op, urlPart, method) {
  // A previous answer stays on screen; "Clear" removes it so we never read a stale one.
  const clear = op.getByRole('button', { name: 'Clear' });
  if (await clear.isVisible()) {
    await clear.click();
    await op.locator('.live-responses-table').waitFor({ state: 'detached', timeout: UI_TIMEOUT });
  }
  const [response] = await Promise.all([
    page.waitForResponse(
      (r) => r.request().method() === method && new URL(r.url()).pathname.includes(urlPart),
      { timeout: CALL_TIMEOUT },
    ),
    op.getByRole('button', { name: 'Execute' }).click(),
  ]);
  const request = response.request();
  const live = op.locator('.live-responses-table');
  await live.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  const code = (await live.locator('tbody .response-col_status').first().innerText({ timeout: UI_TIMEOUT })).trim();
  const bodyLocator = live.locator('.response-col_description pre').first();
  await bodyLocator.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  const body = await bodyLocator.innerText();
  return { httpStatus: response.status(), code, body, origin: await request.headerValue('origin') };
}

const summarize = (body) => body.replace(/\s+/g, ' ').slice(0, 300);

async function main() {
  const p = await profileValues();

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: UI_TIMEOUT,
  });
  browserStarted = true;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
    context.setDefaultTimeout(UI_TIMEOUT);
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') observed.push([phase, `console.${m.type()}: ${m.text()}`]);
    });
    page.on('pageerror', (e) => observed.push([phase, `page error: ${e.message}`]));
    page.on('requestfailed', (r) => observed.push([phase, `request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText})`]));
    page.on('response', (r) => {
      const csp = r.headers()['content-security-policy'];
      if (csp && r.request().resourceType() === 'document') observed.push([phase, `CSP on ${r.url()}: ${csp}`]);
      if (r.status() >= 400) observed.push([phase, `HTTP ${r.status()} ${r.request().method()} ${r.url()}`]);
    });

    // Open the page.
    const nav = await page.goto(`${base}/swagger/index.html`, { waitUntil: 'domcontentloaded', timeout: UI_TIMEOUT });
    must(nav && nav.ok(), `${base}/swagger/index.html loads (HTTP ${nav?.status()})`);
    await page.locator('.swagger-ui .info .title').waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    const title = (await page.locator('.swagger-ui .info .title').innerText()).trim();
    check(/KeyVault Proxy/.test(title), `Swagger UI renders the API title ("${title.split('\n')[0]}")`);

    const tokenPath = '/api/profiles/{name}/token';
    const tokenOp = operation(page, 'get', tokenPath);
    const tokenUrlPart = `/api/profiles/${encodeURIComponent(profile)}/token`;

    // 1. Without authorizing: 401.
    await expand(tokenOp);
    await tryItOut(tokenOp);
    const nameInput = tokenOp.locator('tr[data-param-name="name"] input');
    await nameInput.fill(profile);
    phase = 'unauthorized';
    const unauth = await execute(page, tokenOp, tokenUrlPart, 'GET');
    phase = 'authorized';
    check(unauth.httpStatus === 401, `GET ${tokenPath} without authorizing: the server answers 401 (got ${unauth.httpStatus})`);
    check(unauth.code === '401', `GET ${tokenPath} without authorizing: the UI shows 401 (shows "${unauth.code}": ${summarize(unauth.body)})`);
    await shoot(tokenOp, '1-token-unauthorized.png');

    // 2. Authorize with the API key under `bearer`.
    await page.locator('.scheme-container').getByRole('button', { name: /Authorize/ }).click();
    const modal = page.locator('.dialog-ux .modal-ux');
    await modal.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    const bearer = modal.locator('.auth-container').filter({
      has: page.locator('h4 code', { hasText: /^bearer$/ }),
    });
    must((await bearer.count()) === 1, 'the Authorize dialog lists the `bearer` scheme');
    await bearer.locator('input').first().fill(apiKey);
    // Each scheme has its own form with Authorize (aria-label "Apply credentials") and Close buttons.
    await bearer.locator('button.authorize', { hasText: 'Authorize' }).click();
    await bearer.locator('button', { hasText: 'Logout' }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    check(true, 'the `bearer` scheme shows as authorized (Logout offered)');
    await bearer.locator('button.btn-done', { hasText: 'Close' }).click();
    await modal.waitFor({ state: 'detached', timeout: UI_TIMEOUT });
    const locked = await page
      .locator('.scheme-container button.authorize')
      .evaluate((el) => el.classList.contains('locked'));
    check(locked, 'the Authorize button shows a closed lock');

    // 3. The token route, authorized: 200 with access_token.
    await nameInput.fill(profile);
    const ok = await execute(page, tokenOp, tokenUrlPart, 'GET');
    check(ok.httpStatus === 200, `GET ${tokenPath} authorized: the server answers 200 (got ${ok.httpStatus})`);
    check(ok.code === '200', `GET ${tokenPath} authorized: the UI shows 200 (shows "${ok.code}")`);
    check(ok.body.includes('"access_token"'), `GET ${tokenPath} authorized: the body shows "access_token" (${summarize(ok.body).slice(0, 120)}...)`);
    await tokenOp.scrollIntoViewIfNeeded();
    await shoot(tokenOp, '2-token-authorized.png');
    if (shotDir) {
      // A legible crop: the operation from its summary down to the end of the live response.
      const top = await tokenOp.boundingBox();
      const live = await tokenOp.locator('.live-responses-table').boundingBox();
      if (top && live) {
        await page.setViewportSize({ width: 1280, height: Math.ceil(live.y + live.height - top.y) + 40 });
        await tokenOp.evaluate((el) => el.scrollIntoView({ block: 'start' }));
        const t = await tokenOp.boundingBox();
        const l = await tokenOp.locator('.live-responses-table').boundingBox();
        const file = join(shotDir, '2-token-authorized-crop.png');
        await page.screenshot({
          path: file,
          clip: { x: t.x - 10, y: Math.max(0, t.y - 10), width: t.width + 20, height: l.y + l.height - t.y + 12 },
          animations: 'disabled',
        });
        console.log(`     screenshot ${file}`);
        await page.setViewportSize({ width: 1280, height: 900 });
      }
    }
    await tokenOp.locator('.opblock-summary-control').click(); // collapse it again, as a person would

    // 4. POST /api/Token/kv-certificate with the example body edited to the profile's values.
    const certPath = '/api/Token/kv-certificate';
    const certOp = operation(page, 'post', certPath);
    await expand(certOp);
    await tryItOut(certOp);
    const editor = certOp.locator('textarea.body-param__text');
    await editor.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    let example;
    try {
      example = JSON.parse(await editor.inputValue());
    } catch (e) {
      fail(`the example body of ${certPath} is JSON (${e.message})`);
    }
    const body = {
      ...example,
      clientId: p.client_id,
      tenantId: p.tenant,
      keyVaultUri: p.vault_url,
      certificateName: p.certificate,
      scopes: [p.scopes[0]],
    };
    if ('skipCache' in body) body.skipCache = false;
    await editor.fill(JSON.stringify(body, null, 2));
    const cert = await execute(page, certOp, certPath, 'POST');
    check(cert.origin !== null, `POST ${certPath}: the browser sent an Origin header (${cert.origin})`);
    check(cert.httpStatus === 200, `POST ${certPath} authorized: the server answers 200 (got ${cert.httpStatus}: ${cert.httpStatus === 200 ? 'ok' : summarize(cert.body)})`);
    check(cert.code === '200', `POST ${certPath} authorized: the UI shows 200 (shows "${cert.code}")`);
    check(cert.body.includes('"access_token"'), `POST ${certPath} authorized: the body shows "access_token"`);
    await shoot(certOp, '3-kv-certificate-authorized.png');
    if (shotDir) {
      const file = join(shotDir, '4-full-page.png');
      await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
      console.log(`     screenshot ${file}`);
    }
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (e) {
  if (!(e instanceof CheckFailed)) {
    // Playwright errors: the first line says what timed out, the call log says what it waited for.
    const lines = e.message.split('\n').map((l) => l.trim());
    const waited = lines.find((l) => /waiting for/.test(l));
    const message = waited ? `${lines[0]} (${waited.replace(/^-\s*/, '')})` : lines[0];
    console.log(`FAIL ${message}`);
    failures.push(message);
  }
}
// The one expected 4xx is the deliberate unauthorized call.
const expected = ([when, o]) =>
  when === 'unauthorized' && (/^HTTP 401 GET .*\/token$/.test(o) || /status of 401 \(Unauthorized\)/.test(o));
const notable = observed.filter((o) => !expected(o)).map(([when, o]) => `[${when}] ${o}`);
const hidden = observed.length - notable.length;
if (browserStarted) console.log(
  `browser: ${notable.length ? `${notable.length} unexpected observation(s):` : 'no console errors, page errors, failed requests or CSP headers'}` +
    (hidden ? ` (${hidden} line(s) from the deliberate 401 not shown)` : ''),
);
for (const o of notable) console.log(`  ${o}`);
if (failures.length) {
  console.error(`swagger-check: ${failures.length} check(s) failed:\n  - ${failures.join('\n  - ')}`);
  process.exit(1);
}
console.log('swagger-check: all checks passed');
