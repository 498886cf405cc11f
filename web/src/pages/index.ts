// Every area of the console, in the side menu's order. An area's folder holds its views,
// components and texts; this list is the only shared file a new area touches.
import type { PageArea } from './types'
import dashboard from './dashboard'
import topology from './topology'
import systems from './systems'
import jobs from './jobs'
import restore from './restore'
import dr from './dr'
import compliance from './compliance'
import reports from './reports'
import alerts from './alerts'
import audit from './audit'
import admin from './admin'

export const AREAS: readonly PageArea[] = [
  dashboard, topology, systems, jobs, restore, dr, compliance, reports, alerts, audit, admin,
]
