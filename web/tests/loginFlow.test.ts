import { describe, expect, it } from 'vitest'
import { ApiClient, ApiError } from '@/api/client'
import type { Me } from '@/api/types'
import { INITIAL, LoginFlow, reduce, type FlowState } from '@/auth/loginFlow'

const ME: Me = { name: 'secadmin', kind: 'session', institution: 'center',
  regional_center: true, roles: ['secadmin'], password_change_required: false,
  totp_enrolment_required: false }

const err = (status: number, code: string, retry: number | null = null) =>
  new ApiError(status, code, code, [], retry)

describe('the sign-in state machine', () => {
  it('goes in at once when nothing is outstanding', () => {
    expect(reduce(INITIAL, { type: 'signed_in', user: ME }).step).toBe('done')
  })

  it('asks for the code when the server wants one, and stays there on a wrong code', () => {
    const totp = reduce(INITIAL, { type: 'failed', error: err(401, 'totp_required') })
    expect(totp).toMatchObject({ step: 'totp', error: null })
    const wrong = reduce(totp, { type: 'failed', error: err(401, 'totp_invalid') })
    expect(wrong).toMatchObject({ step: 'totp', error: { code: 'totp_invalid' } })
    expect(reduce(wrong, { type: 'signed_in', user: ME })).toMatchObject({ step: 'done',
      error: null })
  })

  it('says the account is locked, and back to the password from the code step', () => {
    const locked = reduce(INITIAL, { type: 'failed', error: err(423, 'account_locked') })
    expect(locked).toMatchObject({ step: 'credentials', error: { code: 'account_locked' } })
    const totp: FlowState = { ...INITIAL, step: 'totp' }
    expect(reduce(totp, { type: 'failed', error: err(423, 'account_locked') }))
      .toMatchObject({ step: 'credentials', error: { code: 'account_locked' } })
  })

  it('keeps the wait of a rate limit', () => {
    expect(reduce(INITIAL, { type: 'failed', error: err(429, 'rate_limited', 30) }))
      .toMatchObject({ step: 'credentials', error: { code: 'rate_limited', retryAfter: 30 } })
  })

  it('forces the password change, then the enrolment of an administrator', () => {
    const first = { ...ME, password_change_required: true, totp_enrolment_required: true }
    const change = reduce(INITIAL, { type: 'signed_in', user: first })
    expect(change.step).toBe('change_password')
    const enrol = reduce(change, { type: 'password_changed',
      user: { ...first, password_change_required: false } })
    expect(enrol.step).toBe('enrol_totp')
    const shown = reduce(enrol, { type: 'enrolment_started', uri: 'otpauth://totp/x' })
    expect(shown.otpauthUri).toBe('otpauth://totp/x')
    const done = reduce(shown, { type: 'enrolled' })
    expect(done).toMatchObject({ step: 'done', otpauthUri: null })
    expect(done.user?.totp_enrolment_required).toBe(false)
  })

  it('starts again on back', () => {
    expect(reduce({ ...INITIAL, step: 'totp' }, { type: 'back' })).toEqual(INITIAL)
  })
})

/** A server that answers as routes/session.py does for an administrator's first
 * sign-in and a later sign-in with its code. */
function fakeServer() {
  const calls: { path: string; body: Record<string, unknown> }[] = []
  let password = 'one-time'
  let changed = false
  let enrolled = false
  const json = (status: number, body: unknown) => new Response(JSON.stringify(body),
    { status, headers: { 'Content-Type': 'application/json' } })
  const me = () => ({ ...ME, password_change_required: !changed,
    totp_enrolment_required: !enrolled })
  const fetch = async (path: string, init: RequestInit = {}) => {
    const body = init.body ? JSON.parse(String(init.body)) as Record<string, unknown> : {}
    calls.push({ path, body })
    switch (path) {
      case '/api/login':
        if (body.password !== password) return json(401, { error: { code: 'login_failed', message: 'm' } })
        if (enrolled && !body.totp) return json(401, { error: { code: 'totp_required', message: 'm' } })
        if (enrolled && body.totp !== '123456') return json(401, { error: { code: 'totp_invalid', message: 'm' } })
        return json(200, { user: me(), csrf_token: 'c' })
      case '/api/me/password':
        password = String(body.new_password)
        changed = true
        return json(200, { status: 'password changed' })
      case '/api/me':
        return json(200, { user: me() })
      case '/api/me/totp':
        return json(200, { otpauth_uri: 'otpauth://totp/medark:secadmin?secret=ABC' })
      case '/api/me/totp/confirm':
        if (body.code !== '654321') return json(401, { error: { code: 'totp_invalid', message: 'm' } })
        enrolled = true
        return json(200, { status: 'second factor enrolled' })
    }
    return json(404, { error: { code: 'not_found', message: 'm' } })
  }
  return { calls, fetch }
}

describe('the sign-in against the server', () => {
  it('takes an administrator through the first sign-in, then in with a code', async () => {
    const server = fakeServer()
    const client = new ApiClient({ fetch: server.fetch, cookies: () => 'medark_csrf=c' })
    const seen: string[] = []
    const flow = new LoginFlow(client, (state) => seen.push(state.step))

    expect((await flow.signIn('secadmin', 'wrong')).error?.code).toBe('login_failed')
    expect((await flow.signIn('secadmin', 'one-time')).step).toBe('change_password')
    expect((await flow.changePassword('one-time', 'New-Password-2026')).step).toBe('enrol_totp')
    expect((await flow.startEnrolment()).otpauthUri).toContain('otpauth://totp/')
    expect((await flow.confirmEnrolment('000000')).error?.code).toBe('totp_invalid')
    expect((await flow.confirmEnrolment('654321')).step).toBe('done')

    const again = new LoginFlow(client)
    expect((await again.signIn('secadmin', 'New-Password-2026')).step).toBe('totp')
    expect((await again.verify('111111')).error?.code).toBe('totp_invalid')
    const done = await again.verify('123456')
    expect(done.step).toBe('done')
    // the code went with the same user and password
    expect(server.calls.at(-1)?.body).toEqual({ username: 'secadmin',
      password: 'New-Password-2026', totp: '123456' })
    expect(seen).toContain('enrol_totp')
  })
})
