{{ config(
    materialized=incremental_if_supported(),
    unique_key='order_name',
    incremental_strategy='delete+insert',
) }}
-- One row per Shopify order that names its buyer or an address: the name and address the order
-- gives, for int_customer_profiles.  A separate model, so the order roll-ups the marts read stay narrow.
-- Billing first: the buyer's own name and address, where shipping may be a gift's recipient.  The name
-- is Billing Name, else Shipping Name; the address is the billing one when any of its city, zip,
-- province or country is filled, else the shipping one, taken whole (never a billing city with a
-- shipping zip).  Split rule for the single name field: the first word is the first name, the rest
-- the last name ("Mary Ann Smith" -> "Mary" / "Ann Smith"; "Cher" -> "Cher" / NULL).
-- Incremental (on DuckDB) as int_shopify__orders_rolled_up: the orders in files loaded since the
-- last build, replaced by natural key.

with order_lines as (

    select * from {{ ref('stg_shopify__order_lines') }}
    {%- if is_incremental() %}
    where file_id > {{ newest_file_id_built() }}
    {%- endif %}

),

-- order-level fields are on the order's first row only: max() takes them from there (and the text is
-- cleaned once per order, not once per line)
per_order as (

    select
        order_name,
        min(created_at) as ordered_at,
        {{ squish('max(billing_name)') }} as billing_name,
        {{ squish('max(shipping_name)') }} as shipping_name,
        {{ squish('max(billing_city)') }} as billing_city,
        {{ squish('max(billing_zip)') }} as billing_zip,
        {{ squish('max(billing_province)') }} as billing_province,
        {{ squish('max(billing_country)') }} as billing_country,
        {{ squish('max(shipping_city)') }} as shipping_city,
        {{ squish('max(shipping_zip)') }} as shipping_zip,
        {{ squish('max(shipping_province)') }} as shipping_province,
        {{ squish('max(shipping_country)') }} as shipping_country,
        max(file_id) as newest_file_id
    from order_lines
    group by order_name

),

chosen as (

    select
        order_name,
        ordered_at,
        coalesce(billing_name, shipping_name) as full_name,
        (
            billing_city is not null or billing_zip is not null or billing_province is not null
            or billing_country is not null
        ) as uses_billing_address,
        billing_city, billing_zip, billing_province, billing_country,
        shipping_city, shipping_zip, shipping_province, shipping_country,
        newest_file_id
    from per_order

),

final as (

    select
        order_name,
        ordered_at,
        case
            when {{ dbt.position("' '", 'full_name') }} > 0
                then substr(full_name, 1, {{ dbt.position("' '", 'full_name') }} - 1)
            else full_name
        end as first_name,
        case
            when {{ dbt.position("' '", 'full_name') }} > 0
                then substr(full_name, {{ dbt.position("' '", 'full_name') }} + 1)
        end as last_name,
        case when uses_billing_address then billing_city else shipping_city end as city,
        case when uses_billing_address then billing_province else shipping_province end as region,
        upper(case when uses_billing_address then billing_zip else shipping_zip end) as postal_code,
        case when uses_billing_address then billing_country else shipping_country end as country_raw,
        newest_file_id
    from chosen
    where full_name is not null
        or uses_billing_address
        or coalesce(shipping_city, shipping_zip, shipping_province, shipping_country) is not null

)

select * from final
