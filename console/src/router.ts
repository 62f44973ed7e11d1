import { createRouter, createWebHistory, type RouteLocationNormalized } from 'vue-router'
import { onUnauthenticated } from './api/client'
import { can, restoreSession, session, sessionLost, type Permission } from './session'

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable without signing in. */
    public?: boolean
    /** A vehicle owner's page: nobody signs in there, so no session is looked for. */
    owner?: boolean
    /** What the page needs; without it the shell shows the 403 page. */
    permission?: Permission
  }
}

export const router = createRouter({
  history: createWebHistory('/'),
  routes: [
    { path: '/login', name: 'login', component: () => import('./views/LoginPage.vue'), meta: { public: true } },
    // The owner's pages (no account; opened from an SMS or WeChat on a phone). Their short
    // paths are the ones the host's messages link to.
    { path: '/o/r/:token', name: 'owner-repair', component: () => import('./views/owner/OwnerRepairPage.vue'), meta: { public: true, owner: true } },
    { path: '/o/w/:token', name: 'owner-extra-work', component: () => import('./views/owner/OwnerExtraWorkPage.vue'), meta: { public: true, owner: true } },
    { path: '/o/extra-work/:token', redirect: (to) => ({ name: 'owner-extra-work', params: { token: to.params.token } }) },
    { path: '/o/t/:token', name: 'owner-ticket', component: () => import('./views/owner/OwnerTicketPage.vue'), meta: { public: true, owner: true } },
    { path: '/o/c/:token', name: 'owner-order', component: () => import('./views/owner/OwnerOrderPage.vue'), meta: { public: true, owner: true } },
    { path: '/o/u/:token', name: 'owner-opt-out', component: () => import('./views/owner/OwnerOptOutPage.vue'), meta: { public: true, owner: true } },
    { path: '/o/s/:token', name: 'owner-survey', component: () => import('./views/owner/OwnerSurveyPage.vue'), meta: { public: true, owner: true } },
    {
      path: '/',
      component: () => import('./components/AppShell.vue'),
      children: [
        { path: '', name: 'workbench', component: () => import('./views/WorkbenchPage.vue') },
        { path: 'dashboards', name: 'dashboards', component: () => import('./views/dashboards/CockpitPage.vue'), meta: { permission: 'read_records' } },
        { path: 'dashboards/store', name: 'store-cockpit', component: () => import('./views/dashboards/StorePage.vue'), meta: { permission: 'read_records' } },
        { path: 'dashboards/records', name: 'kpi-records', component: () => import('./views/dashboards/RecordsPage.vue'), meta: { permission: 'read_records' } },
        { path: 'customers', name: 'customers', component: () => import('./views/CustomersPage.vue'), meta: { permission: 'read_records' } },
        { path: 'customers/:id(\\d+)', name: 'customer', component: () => import('./views/Customer360Page.vue'), meta: { permission: 'read_records' } },
        { path: 'sales', redirect: '/sales/leads' },
        { path: 'sales/leads', name: 'sales-leads', component: () => import('./views/sales/SalesLeadsPage.vue'), meta: { permission: 'read_records' } },
        { path: 'sales/test-drives', name: 'sales-test-drives', component: () => import('./views/sales/SalesTestDrivesPage.vue'), meta: { permission: 'read_records' } },
        { path: 'sales/orders', name: 'sales-orders', component: () => import('./views/sales/SalesOrdersPage.vue'), meta: { permission: 'read_records' } },
        { path: 'sales/orders/:id(\\d+)', name: 'sales-order', component: () => import('./views/sales/SalesOrderPage.vue'), meta: { permission: 'read_records' } },
        { path: 'approvals', name: 'approvals', component: () => import('./views/ApprovalsPage.vue'), meta: { permission: 'read_records' } },
        { path: 'tickets', name: 'tickets', component: () => import('./views/TicketsPage.vue'), meta: { permission: 'read_records' } },
        { path: 'tickets/:id(\\d+)', name: 'ticket', component: () => import('./views/TicketDetailPage.vue'), meta: { permission: 'read_records' } },
        { path: 'service/appointments', name: 'appointments', component: () => import('./views/service/AppointmentsPage.vue'), meta: { permission: 'read_records' } },
        { path: 'service/repair-orders', name: 'repair-orders', component: () => import('./views/service/RepairOrdersBoard.vue'), meta: { permission: 'read_records' } },
        { path: 'service/repair-orders/:id(\\d+)', name: 'repair-order', component: () => import('./views/service/RepairOrderPage.vue'), meta: { permission: 'read_records' } },
        { path: 'plugins', name: 'plugins', component: () => import('./views/PluginsPage.vue'), meta: { permission: 'read_plugins' } },
        { path: 'outbox', name: 'outbox', component: () => import('./views/OutboxPage.vue'), meta: { permission: 'operate_workers' } },
        { path: 'audit', name: 'audit', component: () => import('./views/AuditPage.vue'), meta: { permission: 'read_audit' } },
        { path: ':pathMatch(.*)*', name: 'not-found', component: () => import('./views/NotFoundPage.vue') },
      ],
    },
  ],
})

/** The person may use the page `route` shows. */
export function allowed(route: RouteLocationNormalized): boolean {
  const permission = route.meta.permission
  return !permission || can(permission)
}

function safeNext(next: unknown): string {
  return typeof next === 'string' && next.startsWith('/') && !next.startsWith('//') ? next : '/'
}

router.beforeEach(async (to) => {
  if (to.meta.owner) return true
  if (!session.checked) await restoreSession()
  if (to.meta.public) {
    return to.name === 'login' && session.me ? safeNext(to.query.next) : true
  }
  if (!session.me) return { name: 'login', query: { next: to.fullPath } }
  return true
})

onUnauthenticated(() => {
  sessionLost()
  const current = router.currentRoute.value
  if (!current.meta.public) {
    void router.replace({ name: 'login', query: { next: current.fullPath } })
  }
})

export { safeNext }
