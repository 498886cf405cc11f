import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { createI18n } from 'vue-i18n'
import { defineComponent, h, ref } from 'vue'
import { messages } from '@/i18n'
import AdminHead from '@/pages/admin/AdminHead.vue'
import FormDialog from '@/pages/admin/FormDialog.vue'
import InstitutionSelect from '@/pages/admin/InstitutionSelect.vue'
import { half } from '@/pages/admin/bilingual'
import { en, zh } from '@/pages/admin/messages'
import { listState } from '@/pages/admin/useAdminList'

type Tree = { [key: string]: string | Tree }
const keys = (tree: Tree, prefix = ''): string[] => Object.entries(tree).flatMap(([key, value]) =>
  typeof value === 'string' ? [`${prefix}${key}`] : keys(value, `${prefix}${key}.`))

function plugins(locale: 'zh-CN' | 'en' = 'zh-CN') {
  const pinia = createPinia()
  setActivePinia(pinia)
  return [createI18n({ legacy: false, locale, messages }), pinia]
}

describe('texts written as [Chinese, English] pairs', () => {
  it('split into two trees with the same keys, each language its own side', () => {
    const pairs = { a: ['甲', 'A'], b: { c: ['丙 {n}', 'C {n}'] } } as const
    expect(half(pairs, 0)).toEqual({ a: '甲', b: { c: '丙 {n}' } })
    expect(half(pairs, 1)).toEqual({ a: 'A', b: { c: 'C {n}' } })
  })

  it('give the administration area both languages of every text', () => {
    expect(keys(en as Tree)).toEqual(keys(zh as Tree))
    expect(zh.tokens.revoke).toBe('吊销')
    expect(en.tokens.revoke).toBe('Revoke')
    expect(en.grants.requestTitle).toBe('Request access to another institution\'s data')
  })
})

describe('a page\'s list', () => {
  it('shows the spinner while read, then the items; quiet reads have no spinner', async () => {
    let answer: (items: string[]) => void = () => {}
    const list = listState(() => new Promise<string[]>((resolve) => { answer = resolve }), String)
    const reading = list.load()
    expect(list.loading.value).toBe(true)
    answer(['a', 'b'])
    await reading
    expect([list.loading.value, list.items.value, list.failure.value]).toEqual([false, ['a', 'b'], null])
    const quiet = list.loadQuietly()
    expect(list.loading.value).toBe(false)
    answer(['c'])
    await quiet
    expect(list.items.value).toEqual(['c'])
  })

  it('keeps the items it had and says why a read failed, until one succeeds', async () => {
    let fail = false
    const list = listState(async () => {
      if (fail) throw new Error('down')
      return [1]
    }, (error) => `failed: ${(error as Error).message}`)
    await list.load()
    fail = true
    await list.load()
    expect([list.items.value, list.failure.value, list.loading.value]).toEqual([[1], 'failed: down', false])
    fail = false
    await list.load()
    expect(list.failure.value).toBeNull()
  })
})

describe('a page\'s head', () => {
  it('names the page, offers refresh and the main action, and shows the failure as an alert', async () => {
    const head = mount(AdminHead, { props: { title: 'API 令牌', loading: false, failure: '服务器不可用',
      hint: '提示', action: '新建令牌' }, global: { plugins: plugins() } })
    expect(head.get('h1').text()).toBe('API 令牌')
    expect(head.get('[role=alert]').text()).toContain('服务器不可用')
    expect(head.get('p.hint').text()).toBe('提示')
    const buttons = head.findAll('button')
    expect(buttons.map((b) => b.text())).toEqual(['刷新', '新建令牌'])
    await buttons[0]!.trigger('click')
    await buttons[1]!.trigger('click')
    expect(Object.keys(head.emitted())).toEqual(expect.arrayContaining(['refresh', 'action']))
  })

  it('has no main action without its words, no alert and no hint when there are none', () => {
    const head = mount(AdminHead, { props: { title: 'x', loading: false, failure: null },
      global: { plugins: plugins('en') } })
    expect(head.findAll('button').map((b) => b.text())).toEqual(['Refresh'])
    expect(head.find('[role=alert]').exists()).toBe(false)
    expect(head.find('p.hint').exists()).toBe(false)
  })
})

describe('a form in a dialog', () => {
  let host: HTMLElement
  beforeEach(() => {
    host = document.createElement('div')
    document.body.append(host)
  })
  afterEach(() => {
    host.remove()
    document.body.innerHTML = ''
  })

  function dialog(ready: boolean, submit: () => Promise<unknown>) {
    const open = ref(true)
    const wrapper = mount(defineComponent(() => () => h(FormDialog, {
      modelValue: open.value, 'onUpdate:modelValue': (value: boolean) => { open.value = value },
      title: '新建', width: '500px', submitLabel: '提交', ready, submit }, () => h('input', { id: 'field' }))),
    { attachTo: host, global: { plugins: plugins() } })
    const submitButton = () => [...document.querySelectorAll('button')].find((b) => b.textContent?.trim() === '提交')!
    return { open, wrapper, submitButton }
  }

  it('sends only when ready, once at a time, and closes when the submit succeeds', async () => {
    let calls = 0
    let finish: () => void = () => {}
    const { open, submitButton } = dialog(true, () => {
      calls += 1
      return new Promise<void>((resolve) => { finish = resolve })
    })
    await flushPromises()
    expect(document.querySelector('#field')).not.toBeNull()
    submitButton().click()
    submitButton().click()
    await flushPromises()
    expect(calls).toBe(1)
    expect(open.value).toBe(true)
    finish()
    await flushPromises()
    expect(open.value).toBe(false)
  })

  it('stays open when the submit fails, and its button is disabled until ready', async () => {
    const failing = dialog(true, async () => { throw { code: 'forbidden', message: 'no' } })
    await flushPromises()
    failing.submitButton().click()
    await flushPromises()
    expect(failing.open.value).toBe(true)
    failing.wrapper.unmount()
    let calls = 0
    const waiting = dialog(false, async () => { calls += 1 })
    await flushPromises()
    expect(waiting.submitButton().disabled).toBe(true)
    waiting.submitButton().click()
    await flushPromises()
    expect([calls, waiting.open.value]).toEqual([0, true])
  })
})

describe('an institution select', () => {
  it('labels each institution as "title (name)", the name alone without a title', async () => {
    const select = mount(InstitutionSelect, { props: { modelValue: 'hosp', institutions: [
      { name: 'hosp', title: '第一医院', kind: 'hospital', created_at: '' },
      { name: 'lab', title: '', kind: 'hospital', created_at: '' }] }, global: { plugins: plugins() } })
    await flushPromises()
    expect(select.text()).toContain('第一医院 (hosp)')
  })
})
