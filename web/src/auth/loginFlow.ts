// The sign-in as a state machine, apart from the page that shows it (LoginView.vue) so
// it can be tested alone. The server's flow (src/medark/server/routes/session.py):
//   POST /api/login {username, password[, totp]}
//     401 totp_required   -> ask for the code, then log in again with it
//     423 account_locked, 429 rate_limited (Retry-After), 401 login_failed -> say so
//     200 with password_change_required -> POST /api/me/password first
//     200 with totp_enrolment_required (an administrator without a second factor)
//        -> POST /api/me/totp (the otpauth:// URI), POST /api/me/totp/confirm {code}
//   then the console.
import { ApiError, type ApiClient } from '@/api/client'
import type { LoginReply, Me } from '@/api/types'

export type Step = 'credentials' | 'totp' | 'change_password' | 'enrol_totp' | 'done'

export interface FlowError {
  code: string
  message: string
  retryAfter: number | null
}

export interface FlowState {
  step: Step
  user: Me | null
  error: FlowError | null
  /** The otpauth:// URI to show while enrolling. */
  otpauthUri: string | null
}

export type FlowEvent =
  | { type: 'signed_in'; user: Me }
  | { type: 'failed'; error: ApiError }
  | { type: 'password_changed'; user: Me }
  | { type: 'enrolment_started'; uri: string }
  | { type: 'enrolled' }
  | { type: 'back' }

export const INITIAL: FlowState = { step: 'credentials', user: null, error: null,
  otpauthUri: null }

/** Where a signed-in user goes next: what the server still asks of them, else in. */
function after(user: Me): Step {
  if (user.password_change_required) return 'change_password'
  if (user.totp_enrolment_required) return 'enrol_totp'
  return 'done'
}

function flowError(error: ApiError): FlowError {
  return { code: error.code, message: error.message, retryAfter: error.retryAfter }
}

/** The next state; pure. */
export function reduce(state: FlowState, event: FlowEvent): FlowState {
  switch (event.type) {
    case 'signed_in':
      return { ...state, step: after(event.user), user: event.user, error: null }
    case 'password_changed':
      return { ...state, step: after(event.user), user: event.user, error: null }
    case 'enrolment_started':
      return { ...state, otpauthUri: event.uri, error: null }
    case 'enrolled':
      return state.user
        ? { ...state, step: 'done', otpauthUri: null, error: null,
          user: { ...state.user, totp_enrolment_required: false } }
        : state
    case 'back':
      return { ...INITIAL }
    case 'failed': {
      const error = flowError(event.error)
      if (event.error.code === 'totp_required') {
        return { ...state, step: 'totp', error: null }
      }
      if (state.step === 'totp' && !['totp_invalid', 'rate_limited'].includes(error.code)) {
        // locked or a wrong password after all: start again from the password
        return { ...INITIAL, error }
      }
      return { ...state, error }
    }
  }
}

/** The flow against the server: each method sends one request and moves the state. */
export class LoginFlow {
  state: FlowState = { ...INITIAL }
  private username = ''
  private password = ''

  constructor(private readonly client: ApiClient,
    private readonly onChange: (state: FlowState) => void = () => {}) {}

  private apply(event: FlowEvent): FlowState {
    this.state = reduce(this.state, event)
    this.onChange(this.state)
    return this.state
  }

  private async attempt(work: () => Promise<FlowEvent>): Promise<FlowState> {
    try {
      return this.apply(await work())
    } catch (error) {
      if (error instanceof ApiError) return this.apply({ type: 'failed', error })
      throw error
    }
  }

  /** The first form: user and password. */
  signIn(username: string, password: string): Promise<FlowState> {
    this.username = username
    this.password = password
    return this.attempt(async () => {
      const reply = await this.client.post<LoginReply>('/api/login', { username, password })
      return { type: 'signed_in', user: reply.user }
    })
  }

  /** The same user and password again with the code. */
  verify(code: string): Promise<FlowState> {
    return this.attempt(async () => {
      const reply = await this.client.post<LoginReply>('/api/login', {
        username: this.username, password: this.password, totp: code })
      return { type: 'signed_in', user: reply.user }
    })
  }

  changePassword(current: string, next: string): Promise<FlowState> {
    return this.attempt(async () => {
      await this.client.post('/api/me/password', { current_password: current,
        new_password: next })
      this.password = next
      const me = await this.client.get<{ user: Me }>('/api/me')
      return { type: 'password_changed', user: me.user }
    })
  }

  /** A new secret: the server answers its otpauth:// URI once. */
  startEnrolment(): Promise<FlowState> {
    return this.attempt(async () => {
      const reply = await this.client.post<{ otpauth_uri: string }>('/api/me/totp')
      return { type: 'enrolment_started', uri: reply.otpauth_uri }
    })
  }

  confirmEnrolment(code: string): Promise<FlowState> {
    return this.attempt(async () => {
      await this.client.post('/api/me/totp/confirm', { code })
      return { type: 'enrolled' }
    })
  }

  /** A user already signed in whose password change or enrolment is still due (the
   * page was reloaded halfway): continue from there. */
  resume(user: Me): FlowState {
    this.username = user.name
    return this.apply({ type: 'signed_in', user })
  }

  back(): FlowState {
    this.password = ''
    return this.apply({ type: 'back' })
  }

  /** Forget the password once the flow is done. */
  forget(): void {
    this.password = ''
    this.username = ''
  }
}
